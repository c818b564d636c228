package schema

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/expc-dev/expc/diag"
)

func TestDebugLoad(t *testing.T) {
	p := os.Getenv("SPEC")
	if p == "" {
		t.Skip()
	}
	e, l := Load(p)
	if l != nil {
		var files map[string][]byte
		if src, err := os.ReadFile(p); err == nil {
			files = map[string][]byte{p: src}
		}
		diag.Render(os.Stdout, l, files, false)
		for _, d := range l {
			t.Logf("%s %s %q", d.Code, d.Path, d.Summary)
		}
		return
	}
	b, _ := json.MarshalIndent(e, "", " ")
	t.Logf("%s\n%v", b, e.Source.Fields)
}
