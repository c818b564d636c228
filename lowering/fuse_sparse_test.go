package lowering_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/lowering"
	"github.com/expc-dev/expc/pipeline"
)

// TestFuseSparseMasks: with the pass every GEMM that reads a masked weight
// becomes a masked matmul (forward, input and weight gradients, in train
// and eval), and no W ⊙ M is left; without it (or at -O0) none is made;
// plans without masks do not list the pass.
func TestFuseSparseMasks(t *testing.T) {
	specs, _ := filepath.Glob("../specs/sparse/*.cue")
	if len(specs) == 0 {
		t.Fatal("no sparse specs")
	}
	for _, spec := range specs {
		fused, d := pipeline.Build(spec, pipeline.Options{OptLevel: 1, MemoryLimit: -1})
		if d.HasErrors() {
			t.Fatal(d)
		}
		plain, d := pipeline.Build(spec, pipeline.Options{OptLevel: 1, Disabled: []string{"fuse-sparse-masks"}, MemoryLimit: -1})
		if d.HasErrors() {
			t.Fatal(d)
		}
		masks := map[int]bool{}
		for _, l := range fused.Plan.Schedule.Masks.Layers {
			for _, b := range fused.Plan.Buffers {
				if b.Name == l.Mask {
					masks[b.ID] = true
				}
			}
		}
		count := func(p *ir.Plan) (masked, maskMuls int) {
			for _, pr := range p.Programs {
				for _, k := range pr.Kernels {
					switch k.Op {
					case "masked_matmul", "masked_matmul_dw":
						masked++
						if !slices.Contains(k.FusedFrom, "mul") {
							t.Errorf("%s: %s %s fused from %v", spec, pr.Name, k.Name, k.FusedFrom)
						}
					case "mul":
						for _, in := range k.Ins {
							if masks[in] {
								maskMuls++
							}
						}
					}
				}
			}
			return
		}
		layers := len(fused.Plan.Schedule.Masks.Layers)
		if m, mm := count(fused.Plan); m < 4*layers-1 || mm != 0 {
			t.Errorf("%s fused: %d masked kernels for %d layers, %d mask multiplies left", spec, m, layers, mm)
		}
		if m, mm := count(plain.Plan); m != 0 || mm == 0 {
			t.Errorf("%s without the pass: %d masked kernels, %d mask multiplies", spec, m, mm)
		}
		if !slices.ContainsFunc(fused.Plan.Passes, func(p ir.PassRecord) bool { return p.Name == "fuse-sparse-masks" && p.Changed }) {
			t.Errorf("%s: pass log %+v", spec, fused.Plan.Passes)
		}
	}
	dense, d := pipeline.Build("../specs/fmnist/mlp.cue", pipeline.Options{OptLevel: 1, MemoryLimit: -1})
	if d.HasErrors() {
		t.Fatal(d)
	}
	if slices.ContainsFunc(dense.Plan.Passes, func(p ir.PassRecord) bool { return p.Name == "fuse-sparse-masks" }) {
		t.Error("a plan without masks lists fuse-sparse-masks")
	}
}

// TestMaskedKernelChoice: the cost model picks the kernel the pattern and
// density call for on a 1024 x 1024 layer with a batch of 256.
func TestMaskedKernelChoice(t *testing.T) {
	w := ir.Tensor(ir.F32, 1024, 1024)
	for _, tc := range []struct {
		attrs ir.Attrs
		want  string
	}{
		{ir.Attrs{"pattern": "unstructured", "density": 0.05}, "csr"},
		{ir.Attrs{"pattern": "unstructured", "density": 0.9}, "dense"},
		{ir.Attrs{"pattern": "block", "block": []int{32, 32}, "density": 0.1}, "block"},
		{ir.Attrs{"pattern": "block", "block": []int{64, 64}, "density": 0.2}, "block"},
		{ir.Attrs{"pattern": "nm", "n": 1, "m": 4, "density": 0.25}, "nm"},
	} {
		for _, p := range []lowering.Product{lowering.Forward, lowering.InputGr, lowering.WeightG} {
			costs := lowering.MaskedCosts(p, 256, w, tc.attrs)
			if costs[0].Kernel != tc.want {
				t.Errorf("%v %s: chose %+v, want %s", tc.attrs, p, costs, tc.want)
			}
			for i := 1; i < len(costs); i++ {
				if costs[i].Seconds < costs[i-1].Seconds {
					t.Errorf("%v %s: candidates not sorted: %+v", tc.attrs, p, costs)
				}
			}
		}
	}
}
