package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
)

// refOp runs op in the float64 interpreter on the given arguments.
func refOp(t testing.TB, op string, attrs ir.Attrs, ins []arg) [][]float64 {
	t.Helper()
	f := &ir.Func{Name: "f"}
	b := ir.NewBuilder(f)
	vals := map[string]*interp.Tensor{}
	var params []*ir.Value
	for i, a := range ins {
		p := b.Param(fmt.Sprintf("a%d", i), a.t, ir.RoleInput)
		params = append(params, p)
		tt := &interp.Tensor{Shape: a.t.Shape}
		if a.t.DType == ir.I32 {
			tt.I = a.i
		} else {
			for _, v := range a.f {
				tt.F = append(tt.F, float64(v))
			}
		}
		vals[p.Name] = tt
	}
	in, err := b.Emit(op, params, attrs)
	if err != nil {
		t.Fatal(err)
	}
	env, err := interp.Run(f, vals)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float64
	for _, r := range in.Results {
		out = append(out, env[r].F)
	}
	return out
}

func resultTypes(t testing.TB, op string, attrs ir.Attrs, ins []arg) []ir.Type {
	t.Helper()
	var ts []ir.Type
	for _, a := range ins {
		ts = append(ts, a.t)
	}
	rts, err := ir.InferTypes(op, ts, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return rts
}

// checkAgainstRef runs op on every test pool and compares each result with
// the interpreter: |got − want| ≤ atol·max|want| + 1e-6 + rtol·|want|.
func checkAgainstRef(t *testing.T, op string, attrs ir.Attrs, ins []arg, atol, rtol float64) {
	t.Helper()
	checkAgainstRefFloor(t, op, attrs, ins, atol, rtol, 1e-6)
}

// checkAgainstRefFloor is checkAgainstRef with an absolute floor other
// than 1e-6 on every result's tolerance.
func checkAgainstRefFloor(t *testing.T, op string, attrs ir.Attrs, ins []arg, atol, rtol, floor float64) {
	t.Helper()
	want := refOp(t, op, attrs, ins)
	rts := resultTypes(t, op, attrs, ins)
	for _, be := range testPools {
		got := runOp(t, be, op, attrs, ins, rts...)
		for i := range got {
			scale := 0.0
			for _, v := range want[i] {
				scale = max(scale, math.Abs(v))
			}
			closeTo(t, fmt.Sprintf("%s result %d (%d workers)", op, i, be.pool.Workers()), got[i], want[i], atol*scale+floor, rtol)
		}
	}
}

func TestContrastiveUnfusedOps(t *testing.T) {
	r := newRand(t)
	const R, C, d = 12, 12, 5
	s := uniforms(r, R*C, -1, 1)
	checkAgainstRef(t, "l2_normalize", nil, []arg{f32Arg(normals(r, R*d, 1), R, d)}, 1e-6, 1e-6)
	checkAgainstRef(t, "l2_normalize_grad", nil, []arg{f32Arg(normals(r, R*d, 1), R, d), f32Arg(normals(r, R*d, 1), R, d)}, 1e-6, 1e-5)
	checkAgainstRef(t, "row_scale", nil, []arg{f32Arg(s, R, C), f32Arg(uniforms(r, R, 1, 3), R)}, 0, 1e-6)
	checkAgainstRef(t, "row_scale", nil, []arg{f32Arg(s, R, C), f32Arg([]float32{2.5})}, 0, 1e-6)
	y := make([]int32, R)
	for i := range y {
		y[i] = int32(r.IntN(3))
	}
	for _, a := range []ir.Attrs{
		{"objective": "nt_xent"}, {"objective": "decoupled"}, {"objective": "dual"},
		{"objective": "nt_xent", "hard_k": 3}, {"objective": "dual", "hard_k": 4},
	} {
		checkAgainstRef(t, "contrastive_mask", a, []arg{f32Arg(s, R, C)}, 0, 0)
	}
	checkAgainstRef(t, "contrastive_mask", ir.Attrs{"objective": "supcon", "classes": 3}, []arg{f32Arg(s, R, C), i32Arg(y, R)}, 0, 1e-7)
	g := uniforms(r, R*C, -1, 1)
	checkAgainstRef(t, "contrastive_mask", ir.Attrs{"objective": "nt_xent", "guided": true, "hard_k": 2}, []arg{f32Arg(s, R, C), f32Arg(g, R, C)}, 0, 0)
	m := make([]float32, R*C)
	p := make([]float32, R*C)
	for i := range m {
		if r.IntN(4) > 0 {
			m[i] = 1
		}
		if r.IntN(6) == 0 {
			p[i] = float32(r.Float64())
		}
	}
	l := normals(r, R*C, 3)
	checkAgainstRef(t, "soft_xent", nil, []arg{f32Arg(l, R, C), f32Arg(m, R, C), f32Arg(p, R, C)}, 0, 1e-5)
	checkAgainstRef(t, "soft_xent_grad", nil, []arg{f32Arg(l, R, C), f32Arg(m, R, C), f32Arg(p, R, C), f32Arg([]float32{1.3})}, 1e-6, 1e-5)
	idx := []int32{3, -1, 0, 8, 3, 9, 2}
	checkAgainstRef(t, "gather", nil, []arg{f32Arg(normals(r, 9, 1), 9), i32Arg(idx, 7)}, 0, 0)
	checkAgainstRef(t, "scatter_add", ir.Attrs{"size": 9}, []arg{f32Arg(normals(r, 7, 1), 7), i32Arg(idx, 7)}, 1e-7, 1e-6)
}

// fusedCase is one variant of contrastive_xent_fused with its operands.
type fusedCase struct {
	name  string
	attrs ir.Attrs
	ins   func(r *rand.Rand, rows, d int) []arg
}

func fusedCases() []fusedCase {
	h := func(r *rand.Rand, rows, d int) arg { return f32Arg(normals(r, rows*d, 1), rows, d) }
	one := f32Arg([]float32{1.7})
	guide := func(r *rand.Rand, rows int) arg { return f32Arg(unitRows(normals(r, rows*6, 1), 6), rows, 6) }
	return []fusedCase{
		{"nt_xent", ir.Attrs{"objective": "nt_xent", "inv_temperature": 5.0, "normalize": true},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), one} }},
		{"nt_xent/unit-inputs", ir.Attrs{"objective": "nt_xent", "inv_temperature": 2.0},
			func(r *rand.Rand, rows, d int) []arg {
				return []arg{f32Arg(unitRows(normals(r, rows*d, 1), d), rows, d), one}
			}},
		{"decoupled", ir.Attrs{"objective": "decoupled", "inv_temperature": 10.0, "normalize": true},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), one} }},
		{"supcon", ir.Attrs{"objective": "supcon", "inv_temperature": 8.0, "normalize": true, "classes": 4},
			func(r *rand.Rand, rows, d int) []arg {
				y := make([]int32, rows)
				for i := range rows / 2 {
					y[i] = int32(r.IntN(4))
					y[i+rows/2] = y[i]
				}
				return []arg{h(r, rows, d), i32Arg(y, rows), one}
			}},
		{"per-sample-tau", ir.Attrs{"objective": "nt_xent", "tau_input": true, "want_dtau": true, "normalize": true},
			func(r *rand.Rand, rows, d int) []arg {
				return []arg{h(r, rows, d), f32Arg(uniforms(r, rows, 2, 14), rows), one}
			}},
		{"scheduled-tau", ir.Attrs{"objective": "nt_xent", "tau_input": true, "normalize": true},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), f32Arg([]float32{6.5}), one} }},
		{"hard", ir.Attrs{"objective": "nt_xent", "inv_temperature": 5.0, "normalize": true, "hard_k": 5},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), one} }},
		{"guided", ir.Attrs{"objective": "nt_xent", "inv_temperature": 5.0, "normalize": true, "guided": true},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), guide(r, rows), one} }},
		{"guided-hard-decoupled", ir.Attrs{"objective": "decoupled", "inv_temperature": 4.0, "normalize": true, "guided": true, "hard_k": 3},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), guide(r, rows), one} }},
		{"dual", ir.Attrs{"objective": "dual", "inv_temperature": 7.0, "normalize": true},
			func(r *rand.Rand, rows, d int) []arg { return []arg{h(r, rows, d), h(r, rows, d), one} }},
		{"dual-guided-hard", ir.Attrs{"objective": "dual", "inv_temperature": 7.0, "normalize": true, "guided": true, "hard_k": 4},
			func(r *rand.Rand, rows, d int) []arg {
				return []arg{h(r, rows, d), h(r, rows, d), guide(r, rows), guide(r, rows), one}
			}},
	}
}

func unitRows(x []float32, d int) []float32 {
	for i := 0; i < len(x); i += d {
		n := float32(rowNorm(x[i : i+d]))
		for j := range d {
			x[i+j] /= n
		}
	}
	return x
}

// TestContrastiveFused compares the fused kernel with the float64 unfused
// reference for every variant, at sizes that do and do not divide the
// tile, with one and four workers, using the vector and scalar exponentials.
// Tolerance: loss to 2e-5 relative; gradients to 1e-4 relative plus 2e-5
// of the largest gradient, and never below 1e-6 absolute. With two rows
// each anchor's only candidate is its positive, so the exact loss and
// gradients are zero and only the floor is left; there the kernel's
// log-sum-exp leaves the positive's probability 1 to within float32
// rounding, which inverse temperatures up to 14 turn into gradients of
// about 1e-6, so the floor is 2e-5 (3 runs in 150 failed at 1e-6).
func TestContrastiveFused(t *testing.T) {
	r := newRand(t)
	for _, tc := range fusedCases() {
		for _, sz := range []struct{ rows, tile int }{{40, 16}, {48, 16}, {64, 16}, {30, 64}, {2, 8}} {
			// Two rows: decoupled has an empty denominator, hard and supcon nothing to choose.
			if sz.rows < 8 && (tc.attrs["hard_k"] != nil || tc.attrs["objective"] == "supcon" || tc.attrs["objective"] == "decoupled") {
				continue
			}
			t.Run(fmt.Sprintf("%s/rows=%d/tile=%d", tc.name, sz.rows, sz.tile), func(t *testing.T) {
				attrs := tc.attrs.Clone()
				attrs["tile"] = sz.tile
				ins := tc.ins(r, sz.rows, 7)
				floor := 1e-6
				if sz.rows == 2 {
					floor = 2e-5
				}
				for _, vec := range []bool{true, false} {
					useVecExp = vec && hasAVX512
					checkAgainstRefFloor(t, "contrastive_xent_fused", attrs, ins, 2e-5, 1e-4, floor)
				}
				useVecExp = hasAVX512
			})
		}
	}
}

// TestContrastiveFusedLowTemperature: at 1/τ = 200 every shifted term of a
// row can underflow float32; such rows are recomputed exactly.
func TestContrastiveFusedLowTemperature(t *testing.T) {
	r := newRand(t)
	attrs := ir.Attrs{"objective": "nt_xent", "inv_temperature": 200.0, "normalize": true, "tile": 8}
	// Rows far from every other row: all off-diagonal similarities ≈ −1/3.
	const rows, d = 8, 4
	x := normals(r, rows*d, 0.01)
	for i := range rows / 2 {
		x[i*d+i%d] += 1
		x[(i+rows/2)*d+i%d] -= 1
	}
	checkAgainstRef(t, "contrastive_xent_fused", attrs, []arg{f32Arg(x, rows, d), f32Arg([]float32{1})}, 1e-4, 1e-4)
}

// TestContrastiveFusedDoesNotAllocate: a prepared fused kernel runs
// without allocating, for every variant.
func TestContrastiveFusedDoesNotAllocate(t *testing.T) {
	r := newRand(t)
	for _, tc := range fusedCases() {
		attrs := tc.attrs.Clone()
		attrs["tile"] = 16
		x := prepareOp(t, testPools[1], "contrastive_xent_fused", attrs, tc.ins(r, 40, 7))
		if n := testing.AllocsPerRun(3, func() {
			if err := x.Run("p"); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per run", tc.name, n)
		}
	}
}
