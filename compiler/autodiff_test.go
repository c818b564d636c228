package compiler

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
)

// gradCase is one op under test: its argument types, how to draw each
// argument (so log, sqrt and div stay in their domains) and attributes.
type gradCase struct {
	name  string
	op    string
	args  []ir.Type
	attrs ir.Attrs
	draw  func(r *rand.Rand, arg int) float64
	// constArgs are f32 arguments that are constants of the op (a mask):
	// no gradient is checked for them.
	constArgs []int
}

func normal(r *rand.Rand, _ int) float64 { return r.NormFloat64() }

// awayFromZero keeps kinks (relu) and poles (div) out of the finite
// difference's reach.
func awayFromZero(r *rand.Rand, _ int) float64 {
	x := 0.2 + r.Float64()
	if r.IntN(2) == 0 {
		return -x
	}
	return x
}

func positive(r *rand.Rand, _ int) float64 { return 0.3 + r.Float64() }

func gradCases() []gradCase {
	m := ir.Tensor(ir.F32, 5, 7)
	var cases []gradCase
	for _, op := range []string{"neg", "exp", "square"} {
		cases = append(cases, gradCase{name: op, op: op, args: []ir.Type{m}, draw: normal})
	}
	for _, op := range []string{"log", "sqrt"} {
		cases = append(cases, gradCase{name: op, op: op, args: []ir.Type{m}, draw: positive})
	}
	for _, act := range ir.Activations {
		cases = append(cases, gradCase{name: act, op: act, args: []ir.Type{m}, draw: awayFromZero})
	}
	for _, op := range []string{"add", "sub", "mul", "div"} {
		cases = append(cases, gradCase{name: op, op: op, args: []ir.Type{m, m}, draw: awayFromZero})
	}
	cases = append(cases,
		gradCase{name: "scale", op: "scale", args: []ir.Type{m}, attrs: ir.Attrs{"factor": -1.75}, draw: normal},
		gradCase{name: "bias_add", op: "bias_add", args: []ir.Type{m, ir.Tensor(ir.F32, 7)}, draw: normal},
		gradCase{name: "bias_add/rank3", op: "bias_add", args: []ir.Type{ir.Tensor(ir.F32, 2, 3, 4), ir.Tensor(ir.F32, 4)}, draw: normal},
		gradCase{name: "softmax_xent", op: "softmax_xent", args: []ir.Type{ir.Tensor(ir.F32, 6, 5), ir.Tensor(ir.I32, 6)},
			attrs: ir.Attrs{"label_smoothing": 0.1, "z_loss": 0.01}, draw: normal},
	)
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		a, b := ir.Tensor(ir.F32, 4, 6), ir.Tensor(ir.F32, 6, 3)
		if tr[0] {
			a = ir.Tensor(ir.F32, 6, 4)
		}
		if tr[1] {
			b = ir.Tensor(ir.F32, 3, 6)
		}
		cases = append(cases, gradCase{name: "matmul" + map[bool]string{false: "N", true: "T"}[tr[0]] + map[bool]string{false: "N", true: "T"}[tr[1]],
			op: "matmul", args: []ir.Type{a, b}, attrs: ir.Attrs{"transpose_a": tr[0], "transpose_b": tr[1]}, draw: normal})
	}
	cases = append(cases, contrastiveGradCases()...)
	cases = append(cases, moeGradCases()...)
	return cases
}

// TestGradientsMatchFiniteDifferences checks every op's gradient rule: the
// gradient of <op(args), R> for a random R, computed by autodiff and run in
// float64, against central differences on fresh random inputs.
// Tolerance: |ad - fd| <= 1e-6 + 1e-5·|fd| (float64, h = 1e-6).
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := &ir.Func{Name: "f"}
			b := ir.NewBuilder(f)
			var params []*ir.Value
			args := map[string]*interp.Tensor{}
			for i, at := range tc.args {
				p := b.Param(string(rune('a'+i)), at, ir.RoleInput)
				params = append(params, p)
				tt := &interp.Tensor{Shape: at.Shape}
				if at.DType == ir.I32 {
					for range at.Shape.Elems() {
						tt.I = append(tt.I, int32(r.IntN(at.Shape[0]-1)))
					}
					tt.I[0] = -1 // one padding row must be ignored
				} else {
					for range at.Shape.Elems() {
						tt.F = append(tt.F, tc.draw(r, i))
					}
				}
				args[p.Name] = tt
			}
			out := b.V(tc.op, tc.attrs, "out", params...)
			seed := b.Param("seed", out.Type, ir.RoleInput)
			st := &interp.Tensor{Shape: out.Type.Shape}
			for range out.Type.Shape.Elems() {
				st.F = append(st.F, r.NormFloat64())
			}
			args["seed"] = st
			var wrt []*ir.Value
			for i, p := range params {
				if p.Type.DType == ir.F32 && !slices.Contains(tc.constArgs, i) {
					wrt = append(wrt, p)
				}
			}
			grads, err := VJP(b, out, seed, wrt)
			if err != nil {
				t.Fatal(err)
			}
			if err := ir.Verify(&ir.Module{Name: "t", Funcs: []*ir.Func{f}}); err != nil {
				t.Fatalf("autodiff produced invalid IR: %v", err)
			}
			env, err := interp.Run(f, args)
			if err != nil {
				t.Fatal(err)
			}
			objective := func() float64 {
				e, err := interp.Run(f, args)
				if err != nil {
					t.Fatal(err)
				}
				var s float64
				for i, v := range e[out].F {
					s += v * st.F[i]
				}
				return s
			}
			const h = 1e-6
			for wi, w := range wrt {
				x := args[w.Name].F
				g := env[grads[wi]].F
				for i := range x {
					orig := x[i]
					x[i] = orig + h
					up := objective()
					x[i] = orig - h
					down := objective()
					x[i] = orig
					fd := (up - down) / (2 * h)
					if math.Abs(g[i]-fd) > 1e-6+1e-5*math.Abs(fd) {
						t.Fatalf("d/d%s[%d]: autodiff %.9g, finite difference %.9g", w.Name, i, g[i], fd)
					}
				}
			}
		})
	}
}

// TestEveryOpIsAccountedFor: an op is fused (passes create it), has a
// gradient rule, or is listed as not differentiable on purpose.
func TestEveryOpIsAccountedFor(t *testing.T) {
	tested := map[string]bool{}
	for _, tc := range gradCases() {
		tested[tc.op] = true
	}
	for _, d := range ir.Ops() {
		_, nd := NotDifferentiable[d.Name]
		switch {
		case d.Fused || nd:
		case !HasGradient(d.Name):
			t.Errorf("op %s has no gradient rule and is not listed in NotDifferentiable", d.Name)
		case !tested[d.Name]:
			t.Errorf("op %s has a gradient rule but no finite-difference case", d.Name)
		}
		if !interp.Has(d.Name) {
			t.Errorf("op %s has no float64 reference in ir/interp", d.Name)
		}
	}
}
