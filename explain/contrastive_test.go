package explain_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/explain"
	"github.com/expc-dev/expc/pipeline"
)

// TestExplainContrastive: the text and JSON reports name the kernel that
// computes the loss, its tile, and the arena saved against the unfused plan.
func TestExplainContrastive(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "spec.cue")
	src := `name: "blobs-ctr"
dataset: {name: "blobs", batch: 64, samples: 400, dim: 6}
model: {kind: "mlp", hidden: [16], projection: [8]}
loss: {kind: "contrastive", temperature: {value: 0.2}}
train: {steps: 5}
`
	if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	res, diags := pipeline.Build(spec, pipeline.Options{OptLevel: 1, MemoryLimit: -1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var text bytes.Buffer
	if err := explain.Text(&text, res.Plan, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"contrastive  objective nt_xent", "contrastive_xent_fused, 128 rows, tiles of 256×256", "unfused: fuse-contrastive saves"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := explain.JSON(&js, res.Plan, nil); err != nil {
		t.Fatal(err)
	}
	var r explain.Report
	if err := json.Unmarshal(js.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	c := r.Contrastive
	if c == nil || len(c.Kernels) != 1 || c.Kernels[0].Tile != 256 || c.SavedBytes <= 0 || c.UnfusedArenaBytes != c.ArenaBytes+c.SavedBytes {
		t.Fatalf("contrastive section %+v", c)
	}
}
