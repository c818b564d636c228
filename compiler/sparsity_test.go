package compiler

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

const sparseHead = `name: "s"
dataset: {name: "blobs", batch: 100}
model: {kind: "mlp", hidden: [256, 128]}
train: steps: 1000
`

func compileSparse(t *testing.T, method string, features int) (*ir.Module, *ir.Plan, *compiler) {
	t.Helper()
	exp, l := schema.LoadBytes("s.cue", []byte(sparseHead+"method: sparsity: "+method+"\n"))
	if l != nil {
		t.Fatalf("%s: %v", method, l)
	}
	in := Input{Exp: exp, Target: "cpu", Data: DataShape{Features: features, Classes: 10, TrainN: 5000, EvalN: 1000}}
	c := &compiler{in: in, exp: exp, src: exp.Source}
	if d := c.check(); d.HasErrors() {
		return nil, nil, c
	}
	mod, plan, d := Compile(in)
	if d.HasErrors() {
		t.Fatalf("%s: %v", method, d)
	}
	return mod, plan, c
}

// TestSparsityDiagnostics: what CUE cannot check is reported by the
// compiler at the spec field that caused it.
func TestSparsityDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		method   string
		features int
		path     string
		msg      string
	}{
		{`{layers: ["conv*"]}`, 64, "method.sparsity.layers[0]", `matches no layer (the model's layers are fc1, fc2, fc3)`},
		{`{layers: ["fc["]}`, 64, "method.sparsity.layers[0]", "bad layer pattern"},
		{`{pattern: "2:4"}`, 66, "method.sparsity.pattern", "layer fc1 has 66 inputs (dataset), not a multiple of 4"},
		{`{pattern: "2:8", layers: ["fc3"]}`, 64, "", ""},
		{`{pattern: "block", block: [32, 32], layers: ["fc3"]}`, 64, "method.sparsity.block", "blocks of 32x32 do not tile layer fc3 (128 inputs x 10 outputs)"},
		{`{pattern: "2:4", schedule: {kind: "gradual", end: 100}}`, 64, "method.sparsity.schedule.kind", "gradual pruning needs an unstructured or block pattern"},
		{`{pattern: "2:4", allocation: "erk"}`, 64, "method.sparsity.allocation", "erk allocation"},
		{`{schedule: {kind: "gradual", end: 1000}}`, 64, "method.sparsity.schedule.end", "pruning ends at step 1000, but the run has 1000 steps"},
		{`{schedule: {dense_at: 2000}}`, 64, "method.sparsity.schedule.dense_at", "after the last of the 1000 training steps"},
		{`{schedule: {kind: "gradual", end: 500, dense_at: 400}}`, 64, "method.sparsity.schedule.dense_at", "before pruning ends at step 500"},
	} {
		_, _, c := compileSparse(t, tc.method, tc.features)
		if tc.path == "" {
			if len(c.diags) > 0 {
				t.Errorf("%s: unexpected %v", tc.method, c.diags)
			}
			continue
		}
		if len(c.diags) == 0 {
			t.Errorf("%s: no diagnostic", tc.method)
			continue
		}
		d := c.diags[0]
		if d.Path != tc.path || !strings.Contains(d.Summary, tc.msg) || d.Range.Start.Line != 5 {
			t.Errorf("%s: got %q at %s line %d, want %q at %s line 5", tc.method, d.Summary, d.Path, d.Range.Start.Line, tc.msg, tc.path)
		}
	}
}

// TestSparsityGraph: masked layers multiply W by their mask (a plain mul
// feeding the matmul) in train and eval, keep the mask and its generation
// as state, and the mask program updates both (and the weight) in place.
func TestSparsityGraph(t *testing.T) {
	mod, plan, _ := compileSparse(t, `{layers: ["fc1", "fc2"], schedule: {kind: "reselect", every: 300}}`, 64)
	for _, name := range []string{"train", "eval"} {
		f := mod.Func(name)
		muls := 0
		for _, in := range f.Body {
			if in.Op == "mul" && in.Args[0].Role == ir.RoleParam && strings.HasSuffix(in.Args[1].Name, ".mask") {
				muls++
			}
		}
		if muls != 2 {
			t.Errorf("%s: %d weight-mask multiplies, want 2", name, muls)
		}
	}
	m := mod.Func("mask")
	if m == nil || len(m.Body) != 2 || m.Body[0].Op != "mask_update" || len(m.Outputs) != 6 {
		t.Fatalf("mask program: %v", ir.Print(&ir.Module{Funcs: []*ir.Func{m}}))
	}
	ms := plan.Schedule.Masks
	if ms == nil || !slices.Equal(ms.Steps, []int{0, 300, 600, 900}) || len(ms.Layers) != 2 || ms.Layers[1].Mask != "fc2.mask" {
		t.Fatalf("mask schedule %+v", ms)
	}
	if err := ir.Verify(mod); err != nil {
		t.Fatal(err)
	}
}

func TestMaskSteps(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   []int
	}{
		{`{}`, []int{0}},
		{`{schedule: {dense_at: 0.5}}`, []int{0, 500}},
		{`{schedule: {kind: "gradual", start: 100, end: 450, every: 100, dense_at: 800}}`, []int{0, 100, 200, 300, 400, 450, 800}},
		{`{schedule: {kind: "reselect", every: 400, dense_at: 700}}`, []int{0, 400, 700}},
	} {
		_, plan, _ := compileSparse(t, tc.method, 64)
		if got := plan.Schedule.Masks.Steps; !slices.Equal(got, tc.want) {
			t.Errorf("%s: steps %v, want %v", tc.method, got, tc.want)
		}
	}
}

// TestERKAndIsoFLOP: ERK keeps the requested fraction of the masked
// weights (small layers denser, capped at 1); iso-FLOP widening makes the
// masked model's non-zero multiply-adds match the dense model's.
func TestERKAndIsoFLOP(t *testing.T) {
	_, _, c := compileSparse(t, `{density: 0.2, allocation: "erk"}`, 64)
	var kept, total float64
	for _, l := range c.sp.layers {
		kept += l.density * float64(l.in*l.out)
		total += float64(l.in * l.out)
		if l.density <= 0 || l.density > 1 {
			t.Errorf("%s: density %g", l.name, l.density)
		}
	}
	// fc3 (128x10) is small: ERK gives it density 1, so it is not masked.
	if len(c.sp.layers) != 2 {
		t.Errorf("masked layers %d, want 2 (fc3 dense)", len(c.sp.layers))
	}
	all := float64(64*256 + 256*128 + 128*10)
	if got := (kept + 128*10) / all; math.Abs(got-0.2) > 1e-3 {
		t.Errorf("ERK keeps %g of the weights, want 0.2", got)
	}
	if c.sp.layers[0].density <= c.sp.layers[1].density {
		t.Errorf("ERK: fc1 (64x256) should be denser than fc2 (256x128): %g, %g", c.sp.layers[0].density, c.sp.layers[1].density)
	}

	_, _, c = compileSparse(t, `{density: 0.25, iso_flop: true}`, 64)
	w := append(append([]int{64}, c.sp.hidden...), 10)
	var macs float64
	for i, l := range c.sp.layers {
		if l.in != w[i] || l.out != w[i+1] {
			t.Fatalf("layer %s is %dx%d, widths %v", l.name, l.in, l.out, w)
		}
		macs += l.density * float64(l.in*l.out)
	}
	dense := float64(64*256 + 256*128 + 128*10)
	if c.sp.hidden[0] <= 256 || math.Abs(macs/dense-1) > 0.05 {
		t.Errorf("iso-FLOP widths %v: %g non-zero MACs vs %g dense", c.sp.hidden, macs, dense)
	}
}
