package explain

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/expc-dev/expc/pipeline"
)

// TestExplainSparsity: the text form shows, per masked layer, the pattern,
// density, chosen kernels with the cost model's estimates and FLOPs saved,
// and for a gradual schedule the density over training; JSON carries the
// same under "sparsity".
func TestExplainSparsity(t *testing.T) {
	res, d := pipeline.Build("../specs/sparse/gradual.cue", pipeline.Options{OptLevel: 1, MemoryLimit: -1})
	if d.HasErrors() {
		t.Fatal(d)
	}
	var text bytes.Buffer
	if err := Text(&text, res.Plan, res.Timings); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{
		"sparsity  (masked layers; kernels chosen by the fuse-sparse-masks cost model)",
		"fc1    unstructured", "csr", "-> csr (index lists over the",
		"gradual magnitude pruning 1.00 -> 0.10 over steps 100..800, every 50",
		"density of fc1 over 1170 steps", "step:density 0:1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out[strings.Index(out, "sparsity"):])
		}
	}
	var js bytes.Buffer
	if err := JSON(&js, res.Plan, res.Timings); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(js.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Sparsity) != 2 || len(r.Sparsity[0].Products) == 0 || len(r.Sparsity[0].Products[0].Candidates) < 2 || len(r.Sparsity[0].Curve) < 3 {
		t.Fatalf("json sparsity: %+v", r.Sparsity)
	}
	p := r.Sparsity[1].Products[0]
	if p.Chosen != "csr" || p.FLOPs >= p.DenseFLOPs/5 {
		t.Errorf("fc2 %s: %+v", p.Product, p)
	}

	if strings.Contains(out, "estimates are the CPU backend's") {
		t.Errorf("a CPU plan says its estimates are another target's:\n%s", out)
	}

	// A CUDA plan says whose estimates it shows.
	res, d = pipeline.Build("../specs/sparse/nm_reselect.cue", pipeline.Options{OptLevel: 1, Backend: "cuda", MemoryLimit: -1})
	if d.HasErrors() {
		t.Fatal(d)
	}
	text.Reset()
	if err := Text(&text, res.Plan, nil); err != nil {
		t.Fatal(err)
	}
	if want := "estimates are the CPU backend's (2-core reference machine); cuda kernels have no rates of their own yet"; !strings.Contains(text.String(), want) {
		t.Errorf("cuda plan's explain lacks %q", want)
	}

	// Without the pass the layers are listed as unfused.
	res, d = pipeline.Build("../specs/sparse/random_static.cue", pipeline.Options{OptLevel: 1, Disabled: []string{"fuse-sparse-masks"}, MemoryLimit: -1})
	if d.HasErrors() {
		t.Fatal(d)
	}
	text.Reset()
	if err := Text(&text, res.Plan, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "unfused: W ⊙ M, then dense GEMMs") {
		t.Errorf("unfused plan:\n%s", text.String())
	}
}
