package kerneltest

import (
	"math/rand/v2"

	"github.com/expc-dev/expc/ir"
)

// Cases of the sparse training ops (ir/optable_sparse.go). mask_update and
// dense-with-mask take random floats as masks (the ops are defined for any
// values, and a wrong index shows up in the comparison); the compressed
// variants (nm, block, csr) take random 0/1 masks with their pattern.
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
		// Random-float masks (the values multiply W): dense-with-mask. The
		// compressed CPU kernels read a mask as kept / pruned only, which is
		// the same on the 0/1 masks that mask_update writes, so the
		// compressed variants are checked on 0/1 masks below.
		mm := ir.Attrs{"kernel": "dense", "pattern": "unstructured", "density": 0.3}
		with := func(base ir.Attrs, kv ...any) ir.Attrs {
			out := ir.Attrs{}
			for k, v := range base {
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
				Attrs: with(mm, "act", "relu"), Tol: 1e-5},
			Case{Name: "masked_matmul input grad", Op: "masked_matmul", Ins: []ir.Type{f32(33, 40), w, w, scalarI, f32(33, 96)},
				Attrs: with(mm, "transpose_b", true, "act", "gelu"), Tol: 1e-5},
			Case{Name: "masked_matmul_dw", Op: "masked_matmul_dw", Ins: []ir.Type{f32(33, 96), f32(33, 40), w, scalarI}, Attrs: mm, Tol: 1e-5},
		)
		// Each compressed variant x {forward, bias+act, input grad with
		// act', weight grad} on a mask with its pattern, then sizes that
		// divide no tile.
		variant := func(name string, at ir.Attrs, mask Fill, b, rows, cols int) {
			wt := f32(rows, cols)
			fill := []Fill{{"normal", 1}, {"normal", 1}, mask}
			cs = append(cs,
				Case{Name: "masked_matmul " + name + " forward", Op: "masked_matmul", Ins: []ir.Type{f32(b, rows), wt, wt, scalarI},
					Fill: fill, Attrs: at, Tol: 1e-5},
				Case{Name: "masked_matmul " + name + " bias gelu", Op: "masked_matmul", Ins: []ir.Type{f32(b, rows), wt, wt, scalarI, f32(cols)},
					Fill: fill, Attrs: with(at, "act", "gelu"), Tol: 1e-5},
				Case{Name: "masked_matmul " + name + " input grad", Op: "masked_matmul", Ins: []ir.Type{f32(b, cols), wt, wt, scalarI, f32(b, rows)},
					Fill: append(fill, Fill{Kind: "int"}, Fill{"normal", 3}), Attrs: with(at, "transpose_b", true, "act", "tanh"), Tol: 1e-5},
				Case{Name: "masked_matmul " + name + " dw", Op: "masked_matmul_dw", Ins: []ir.Type{f32(b, rows), f32(b, cols), wt, scalarI},
					Fill: fill, Attrs: at, Tol: 1e-5},
			)
		}
		nm := ir.Attrs{"kernel": "nm", "pattern": "nm", "n": 2, "m": 4, "density": 0.5}
		blk := ir.Attrs{"kernel": "block", "pattern": "block", "block": []int{8, 8}, "density": 0.4}
		csr := ir.Attrs{"kernel": "csr", "pattern": "unstructured", "density": 0.3}
		variant("nm 2:4", nm, Fill{Kind: "mask_nm"}, 33, 96, 40)
		variant("nm 1:4 odd", with(nm, "n", 1), Fill{Kind: "mask_nm"}, 70, 100, 37)
		variant("nm 3:8", with(nm, "n", 3, "m", 8), Fill{Kind: "mask_nm"}, 45, 96, 50)
		// A mask that is not n:m (more than n kept in many groups): the
		// packed form takes every kept row, the exact product still.
		variant("nm over", nm, Fill{"mask_density", 0.8}, 33, 96, 40)
		variant("block 8x8", blk, Fill{"mask_block", 0.4}, 33, 96, 40)
		variant("block 5x7 odd", with(blk, "block", []int{5, 7}), Fill{"mask_block", 0.3}, 70, 100, 77)
		variant("block 16x16", with(blk, "block", []int{16, 16}), Fill{"mask_block", 0.3}, 130, 160, 96)
		variant("csr", csr, Fill{"mask_density", 0.3}, 33, 96, 40)
		variant("csr odd", csr, Fill{"mask_density", 0.1}, 45, 101, 53)
		// A classifier's narrow output (the 64x16 tile).
		cs = append(cs, Case{Name: "masked_matmul nm 2:4 narrow", Op: "masked_matmul", Ins: []ir.Type{f32(70, 64), f32(64, 10), f32(64, 10), scalarI},
			Fill: []Fill{{"normal", 1}, {"normal", 1}, {Kind: "mask_nm"}}, Attrs: nm, Tol: 1e-5})
		// Outputs large enough for the 64x64 tile (the weight gradient's
		// block GEMM is the forward's template).
		big := f32(32, 1024)
		cs = append(cs,
			Case{Name: "masked_matmul nm 2:4 tile 64x64", Op: "masked_matmul", Ins: []ir.Type{f32(1000, 32), big, big, scalarI},
				Fill: []Fill{{"normal", 1}, {"normal", 1}, {Kind: "mask_nm"}}, Attrs: nm, Tol: 1e-5},
			Case{Name: "masked_matmul block 16x16 tile 64x64", Op: "masked_matmul", Ins: []ir.Type{f32(1000, 32), big, big, scalarI},
				Fill: []Fill{{"normal", 1}, {"normal", 1}, {"mask_block", 0.5}}, Attrs: with(blk, "block", []int{16, 16}), Tol: 1e-5},
		)
		return cs
	}
}

// fillMask draws a 0/1 mask with the structure fl names into v (shape
// rows x cols), from the case's pattern attributes; false when fl is not
// a mask kind.
func fillMask(fl Fill, at ir.Attrs, shape ir.Shape, r *rand.Rand, v []float32) bool {
	if len(shape) != 2 {
		return false
	}
	rows, cols := shape[0], shape[1]
	switch fl.Kind {
	case "mask_nm", "mask_block", "mask_density":
		clear(v)
	default:
		return false
	}
	switch fl.Kind {
	case "mask_nm": // exactly n of every m rows of each column
		n, m := at.Int("n", 2), at.Int("m", 4)
		for j := range cols {
			for g := 0; g+m <= rows; g += m {
				for _, i := range r.Perm(m)[:n] {
					v[(g+i)*cols+j] = 1
				}
			}
		}
	case "mask_block": // whole blocks, each kept with probability Arg
		b := at.Ints("block")
		for bi := 0; bi < rows; bi += b[0] {
			for bj := 0; bj < cols; bj += b[1] {
				if r.Float64() >= fl.Arg {
					continue
				}
				for i := bi; i < min(bi+b[0], rows); i++ {
					for j := bj; j < min(bj+b[1], cols); j++ {
						v[i*cols+j] = 1
					}
				}
			}
		}
	case "mask_density": // each weight kept with probability Arg
		for i := range v {
			if r.Float64() < fl.Arg {
				v[i] = 1
			}
		}
	}
	return true
}
