package explain

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/pipeline"
)

func buildPlan(t *testing.T) *pipeline.Result {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.cue")
	src := `name: "explain-me"
dataset: {name: "moons", batch: 16, samples: 200}
model: {kind: "mlp", hidden: [8]}
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	res, diags := pipeline.Build(p, pipeline.Options{OptLevel: 1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return res
}

func TestJSONHasTheStableFields(t *testing.T) {
	res := buildPlan(t)
	var buf bytes.Buffer
	if err := JSON(&buf, res.Plan, res.Timings); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Hash   string `json:"hash"`
		Passes []struct {
			Name    string   `json:"name"`
			Seconds *float64 `json:"seconds"`
		} `json:"passes"`
		Kernels []struct {
			Name      string   `json:"name"`
			Op        string   `json:"op"`
			FusedFrom []string `json:"fused_from"`
			Shapes    struct {
				Ins, Outs []string
			} `json:"shapes"`
			FLOPs int64 `json:"flops"`
			Bytes int64 `json:"bytes"`
		} `json:"kernels"`
		Memory struct {
			ArenaBytes int64 `json:"arena_bytes"`
		} `json:"memory"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Hash != res.Plan.Hash || got.Memory.ArenaBytes != res.Plan.Memory.ArenaBytes {
		t.Fatalf("hash/arena: %q %d", got.Hash, got.Memory.ArenaBytes)
	}
	if len(got.Passes) != len(res.Plan.Passes) || len(got.Passes) == 0 {
		t.Fatalf("%d passes, plan has %d", len(got.Passes), len(res.Plan.Passes))
	}
	for _, p := range got.Passes {
		if p.Seconds == nil || *p.Seconds < 0 {
			t.Fatalf("pass %s has no time", p.Name)
		}
	}
	fused, matmulFLOPs := 0, int64(0)
	for _, k := range got.Kernels {
		if k.Name == "" || k.Op == "" || len(k.Shapes.Outs) == 0 || k.Bytes <= 0 {
			t.Fatalf("incomplete kernel row %+v", k)
		}
		if len(k.FusedFrom) > 0 {
			fused++
		}
		if strings.HasPrefix(k.Op, "matmul") {
			matmulFLOPs += k.FLOPs
		}
	}
	if fused == 0 || matmulFLOPs == 0 {
		t.Fatalf("no fused kernels (%d) or no matmul FLOPs (%d)", fused, matmulFLOPs)
	}
}

func TestTextShowsPassesKernelsAndArena(t *testing.T) {
	res := buildPlan(t)
	var buf bytes.Buffer
	if err := Text(&buf, res.Plan, res.Timings); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"passes", "fuse-elementwise", " ms", "program train", "matmul_bias_act", "fused from", "arena"} {
		if !strings.Contains(out, want) {
			t.Errorf("text explain lacks %q:\n%s", want, out)
		}
	}
	// Without timings it says so instead of inventing them.
	buf.Reset()
	_ = Text(&buf, res.Plan, nil)
	if !strings.Contains(buf.String(), "pass times unknown") {
		t.Error("text explain without timings does not say the times are unknown")
	}
}

// TestDotRendersWithGraphviz pipes the DOT output through Graphviz.
func TestDotRendersWithGraphviz(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("graphviz `dot` is not installed; scripts/install-deps.sh installs it")
		}
		t.Skip("graphviz `dot` not installed (scripts/install-deps.sh installs it)")
	}
	res := buildPlan(t)
	var buf bytes.Buffer
	if err := Dot(&buf, res.Plan, nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dot rejected the graph: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("<svg")) || !bytes.Contains(out, []byte("matmul_bias_act")) {
		t.Fatal("dot output is not an SVG of the plan")
	}
}
