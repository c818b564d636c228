package diag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestRenderSnippet(t *testing.T) {
	src := []byte("name: \"x\"\n\n\noptimizer: {kind: \"sgd\", lr: -0.1}\n")
	d := Errorf(Range{File: "specs/x.cue", Start: Pos{Line: 4, Col: 30, Offset: 40}, End: Pos{Line: 4, Col: 34, Offset: 44}},
		"optimizer.lr", "E-SPEC-RANGE", "optimizer.lr must be > 0, got %v", -0.1)
	d.Detail = "the learning rate scales every update\nsgd defaults to 0.05"
	var b bytes.Buffer
	if err := Render(&b, List{d}, map[string][]byte{"specs/x.cue": src}, false); err != nil {
		t.Fatal(err)
	}
	want := `specs/x.cue:4:30: error: optimizer.lr must be > 0, got -0.1
    4 | optimizer: {kind: "sgd", lr: -0.1}
      |                              ^^^^
  hint: the learning rate scales every update
        sgd defaults to 0.05
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRenderTabsAndNoSnippet(t *testing.T) {
	src := []byte("a: {\n\tb: 1\n}\n")
	l := List{
		Errorf(Range{File: "t.cue", Start: Pos{Line: 2, Col: 5}}, "", "E", "bad b"),
		Errorf(Range{File: "t.cue", Start: Pos{Line: 9, Col: 1}}, "", "E", "past the end"),
		Errorf(File("gone.cue"), "", "E", "no such file"),
		Errorf(Range{}, "", "E", "nowhere"),
	}
	var b bytes.Buffer
	Render(&b, l, map[string][]byte{"t.cue": src}, false)
	want := "t.cue:2:5: error: bad b\n    2 | \tb: 1\n      | \t   ^\n" +
		"t.cue:9:1: error: past the end\n" +
		"gone.cue: error: no such file\n" +
		"error: nowhere\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestRenderColor(t *testing.T) {
	var b bytes.Buffer
	Render(&b, List{Errorf(File("f"), "", "E", "x")}, nil, true)
	if !strings.Contains(b.String(), "\x1b[") {
		t.Errorf("no escapes in %q", b.String())
	}
}

func TestRenderJSON(t *testing.T) {
	var b bytes.Buffer
	if err := RenderJSON(&b, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"diagnostics": []`) {
		t.Errorf("empty list: %s", b.String())
	}
	b.Reset()
	RenderJSON(&b, List{Errorf(Range{File: "f.cue", Start: Pos{Line: 1, Col: 2}}, "a.b", "E-X", "boom")})
	var got struct{ Diagnostics []Diagnostic }
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Diagnostics) != 1 || got.Diagnostics[0].Code != "E-X" || got.Diagnostics[0].Range.Start.Col != 2 || got.Diagnostics[0].Path != "a.b" {
		t.Errorf("round trip: %+v", got)
	}
}

func TestFromError(t *testing.T) {
	if FromError(nil) != nil {
		t.Error("nil error gave diagnostics")
	}
	l := List{Errorf(File("a"), "", "E-A", "a")}
	if got := FromError(fmt.Errorf("wrapped: %w", l)); len(got) != 1 || got[0].Code != "E-A" {
		t.Errorf("list did not pass through: %v", got)
	}
	pe := &fs.PathError{Op: "open", Path: "x.cue", Err: fs.ErrNotExist}
	if got := FromError(pe); got[0].Range.File != "x.cue" || got[0].Code != CodeIO {
		t.Errorf("path error: %+v", got)
	}
	if got := FromError(errors.New("plain")); got[0].Code != CodeError || got[0].Summary != "plain" || got[0].Severity != Error {
		t.Errorf("plain error: %+v", got)
	}
	w := Wrapf(errors.New("plain"), "loading %s", "plan")
	if w[0].Summary != "loading plan: plain" {
		t.Errorf("Wrapf: %q", w[0].Summary)
	}
}

func TestListErrAndSort(t *testing.T) {
	warn := List{New(Warning, Range{}, "", "W", "w")}
	if warn.Err() != nil {
		t.Error("warnings are not an error")
	}
	l := List{
		Errorf(Range{File: "b", Start: Pos{Line: 1, Col: 1}}, "", "E", "3"),
		Errorf(Range{File: "a", Start: Pos{Line: 2, Col: 1}}, "", "E", "2"),
		Errorf(Range{File: "a", Start: Pos{Line: 1, Col: 9}}, "", "E", "1"),
	}
	l.Sort()
	if l[0].Summary != "1" || l[1].Summary != "2" || l[2].Summary != "3" {
		t.Errorf("sort: %v", l)
	}
	if l.Err() == nil {
		t.Error("errors are an error")
	}
}
