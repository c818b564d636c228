package sparse

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
)

// TestMaskUpdateMatchesInterp: the quickselect mask selection equals the
// float64 reference's sort-based one (the op's definition) bit for bit, for
// every pattern, init and schedule, on weights with ties.
func TestMaskUpdateMatchesInterp(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	const rows, cols = 64, 48
	base := []ir.Attrs{
		{"pattern": "unstructured", "density": 0.3},
		{"pattern": "nm", "n": 2, "m": 4, "density": 0.5},
		{"pattern": "nm", "n": 1, "m": 8, "density": 0.125},
		{"pattern": "block", "block": []int{8, 16}, "density": 0.25},
	}
	for _, b := range base {
		for _, init := range []string{"random", "magnitude"} {
			for _, sched := range []ir.Attrs{
				{"schedule": "static"},
				{"schedule": "reselect", "every": 10},
				{"schedule": "gradual", "initial_density": 0.9, "start": 10, "end": 50, "every": 10},
				{"schedule": "static", "dense_at": 40},
			} {
				if b.Str("pattern", "") == "nm" && sched.Str("schedule", "") == "gradual" {
					continue
				}
				a := b.Clone()
				for k, v := range sched {
					a[k] = v
				}
				a["init"], a["seed"] = init, 1234
				t.Run(fmt.Sprintf("%v", a), func(t *testing.T) {
					w := make([]float32, rows*cols)
					for i := range w {
						w[i] = float32(r.IntN(9) - 4) // many ties, some zeros
					}
					m := make([]float32, rows*cols)
					gen := []int32{0}
					u := NewMaskUpdate(a, rows, cols)
					for _, step := range []int{0, 10, 20, 30, 40, 50} {
						wantW, wantM, wantGen := interpMaskUpdate(t, a, w, m, gen[0], step)
						u.Run(w, m, gen, step)
						for i := range w {
							if float64(w[i]) != wantW[i] || float64(m[i]) != wantM[i] {
								t.Fatalf("step %d, element %d: w %g m %g, want w %g m %g", step, i, w[i], m[i], wantW[i], wantM[i])
							}
						}
						if gen[0] != wantGen {
							t.Fatalf("step %d: gen %d, want %d", step, gen[0], wantGen)
						}
						for i := range w { // the weights move between updates
							if m[i] != 0 {
								w[i] += float32(r.IntN(3) - 1)
							}
						}
					}
				})
			}
		}
	}
}

func interpMaskUpdate(t *testing.T, a ir.Attrs, w, m []float32, gen int32, step int) ([]float64, []float64, int32) {
	t.Helper()
	f := &ir.Func{Name: "mask"}
	b := ir.NewBuilder(f)
	wt := ir.Tensor(ir.F32, 64, 48)
	pw := b.Param("w", wt, ir.RoleInput)
	pm := b.Param("m", wt, ir.RoleInput)
	pg := b.Param("gen", ir.Scalar(ir.I32), ir.RoleInput)
	ps := b.Param("step", ir.Scalar(ir.I32), ir.RoleInput)
	in := b.Must("mask_update", []*ir.Value{pw, pm, pg, ps}, a, "w2", "m2", "g2")
	args := map[string]*interp.Tensor{
		"w": {Shape: wt.Shape, F: f64(w)}, "m": {Shape: wt.Shape, F: f64(m)},
		"gen": {Shape: ir.Shape{}, I: []int32{gen}}, "step": {Shape: ir.Shape{}, I: []int32{int32(step)}},
	}
	env, err := interp.Run(f, args)
	if err != nil {
		t.Fatal(err)
	}
	return env[in.Results[0]].F, env[in.Results[1]].F, env[in.Results[2]].I[0]
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
