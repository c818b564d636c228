package kerneltest

import "github.com/expc-dev/expc/ir"

// Cases of the sparse training ops (ir/optable_sparse.go). The mask inputs
// are random floats, not 0/1: the ops are defined for any values, and a
// wrong index shows up in the comparison.
func init() {
	base := extraCases
	extraCases = func() []Case {
		cs := base()
		w := f32(96, 40)
		mu := func(name string, step int, attrs ir.Attrs) Case {
			return Case{Name: "mask_update " + name, Op: "mask_update", Ins: []ir.Type{w, w, scalarI, scalarI},
				Fill: []Fill{{"normal", 1}, {"normal", 1}, {Kind: "int"}, {"step", float64(step)}}, Attrs: attrs, Alias: map[int]int{0: 0, 1: 1, 2: 2}}
		}
		cs = append(cs,
			mu("unstructured random", 0, ir.Attrs{"pattern": "unstructured", "init": "random", "density": 0.3, "seed": 7}),
			mu("unstructured gradual", 30, ir.Attrs{"pattern": "unstructured", "schedule": "gradual", "init": "magnitude", "density": 0.2,
				"initial_density": 0.9, "start": 10, "end": 50, "every": 10}),
			mu("nm reselect", 20, ir.Attrs{"pattern": "nm", "n": 2, "m": 4, "schedule": "reselect", "init": "magnitude", "density": 0.5}),
			mu("block", 0, ir.Attrs{"pattern": "block", "block": []int{8, 8}, "init": "magnitude", "density": 0.4}),
			mu("dense_at", 100, ir.Attrs{"pattern": "unstructured", "density": 0.3, "dense_at": 50}),
		)
		mm := ir.Attrs{"kernel": "csr", "pattern": "unstructured", "density": 0.3}
		with := func(kv ...any) ir.Attrs {
			out := ir.Attrs{}
			for k, v := range mm {
				out[k] = v
			}
			for i := 0; i < len(kv); i += 2 {
				out[kv[i].(string)] = kv[i+1]
			}
			return out
		}
		cs = append(cs,
			Case{Name: "masked_matmul forward", Op: "masked_matmul", Ins: []ir.Type{f32(33, 96), w, w, scalarI}, Attrs: mm, Tol: 1e-5},
			Case{Name: "masked_matmul bias relu", Op: "masked_matmul", Ins: []ir.Type{f32(33, 96), w, w, scalarI, f32(40)},
				Attrs: with("act", "relu"), Tol: 1e-5},
			Case{Name: "masked_matmul input grad", Op: "masked_matmul", Ins: []ir.Type{f32(33, 40), w, w, scalarI, f32(33, 96)},
				Attrs: with("transpose_b", true, "act", "gelu"), Tol: 1e-5},
			Case{Name: "masked_matmul_dw", Op: "masked_matmul_dw", Ins: []ir.Type{f32(33, 96), f32(33, 40), w, scalarI}, Attrs: mm, Tol: 1e-5},
		)
		return cs
	}
}
