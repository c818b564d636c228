package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// float64 references of the activations, written from their definitions
// (not from gemm's float32 helpers).
func gelu64(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func gelu64Grad(x float64) float64 {
	c := math.Sqrt(2 / math.Pi)
	t := math.Tanh(c * (x + 0.044715*x*x*x))
	return 0.5*(1+t) + 0.5*x*(1-t*t)*c*(1+3*0.044715*x*x)
}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Tolerances: exact float32 ops (neg, square, relu, add, ...) must match the
// float64 result rounded once, so 1 ulp (rtol 6e-8) plus nothing; the
// transcendental ones are within a few ulp (rtol 1e-6) plus an absolute 1e-7
// for results near zero, where gelu's and tanh's cancellation dominates.
var unaryCases = []struct {
	op         string
	ref        func(float64) float64
	lo, hi     float64 // input range; lo == hi means N(0, 2²)
	atol, rtol float64
}{
	{"neg", func(x float64) float64 { return -x }, 0, 0, 0, 0},
	{"exp", math.Exp, -20, 20, 0, 1e-6},
	{"log", math.Log, 1e-3, 50, 1e-7, 1e-6},
	{"sqrt", math.Sqrt, 1e-3, 50, 0, 6e-8},
	{"square", func(x float64) float64 { return x * x }, 0, 0, 0, 6e-8},
	{"relu", func(x float64) float64 { return max(x, 0) }, 0, 0, 0, 0},
	{"gelu", gelu64, 0, 0, 1e-7, 1e-6},
	{"tanh", math.Tanh, 0, 0, 1e-7, 1e-6},
	{"sigmoid", sigmoid64, 0, 0, 1e-7, 1e-6},
}

func inputs(r *rand.Rand, n int, lo, hi float64) []float32 {
	if lo == hi {
		return normals(r, n, 2)
	}
	return uniforms(r, n, lo, hi)
}

func TestUnary(t *testing.T) {
	r := newRand(t)
	for _, be := range testPools {
		for _, c := range unaryCases {
			for _, n := range sizes {
				x := inputs(r, n, c.lo, c.hi)
				got := runOp(t, be, c.op, nil, []arg{f32Arg(x, n)}, ir.Tensor(ir.F32, n))[0]
				want := make([]float64, n)
				for i, v := range x {
					want[i] = c.ref(float64(v))
				}
				closeTo(t, c.op, got, want, c.atol, c.rtol)
			}
		}
	}
}

func TestActivationGrads(t *testing.T) {
	r := newRand(t)
	grads := map[string]func(float64) float64{
		"relu_grad": func(x float64) float64 {
			if x > 0 {
				return 1
			}
			return 0
		},
		"gelu_grad":    gelu64Grad,
		"tanh_grad":    func(x float64) float64 { return 1 - math.Tanh(x)*math.Tanh(x) },
		"sigmoid_grad": func(x float64) float64 { return sigmoid64(x) * (1 - sigmoid64(x)) },
	}
	for _, be := range testPools {
		for op, d := range grads {
			for _, n := range sizes {
				dy, x := normals(r, n, 1), normals(r, n, 2)
				got := runOp(t, be, op, nil, []arg{f32Arg(dy, n), f32Arg(x, n)}, ir.Tensor(ir.F32, n))[0]
				// act' is evaluated in float32, and 1 − tanh² and σ(1 − σ)
				// cancel in the tails: its absolute error is a few 1e-8
				// up to ~3e-7, so allow 4e-7·|dy| plus rtol 2e-6.
				for i := range x {
					want := float64(dy[i]) * d(float64(x[i]))
					if diff := math.Abs(float64(got[i]) - want); !(diff <= 4e-7*math.Abs(float64(dy[i]))+2e-6*math.Abs(want)) {
						t.Fatalf("%s(dy=%g, x=%g) = %.9g, want %.9g", op, dy[i], x[i], got[i], want)
					}
				}
			}
		}
	}
}

func TestBinaryAndScale(t *testing.T) {
	r := newRand(t)
	refs := map[string]func(a, b float64) float64{
		"add": func(a, b float64) float64 { return a + b },
		"sub": func(a, b float64) float64 { return a - b },
		"mul": func(a, b float64) float64 { return a * b },
		"div": func(a, b float64) float64 { return a / b },
	}
	for _, be := range testPools {
		for _, n := range sizes {
			a := normals(r, n, 3)
			b := uniforms(r, n, 0.5, 2) // away from zero for div
			for op, f := range refs {
				got := runOp(t, be, op, nil, []arg{f32Arg(a, n), f32Arg(b, n)}, ir.Tensor(ir.F32, n))[0]
				want := make([]float64, n)
				for i := range a {
					want[i] = f(float64(a[i]), float64(b[i]))
				}
				closeTo(t, op, got, want, 0, 6e-8) // one rounding
			}
			got := runOp(t, be, "scale", ir.Attrs{"factor": -0.37}, []arg{f32Arg(a, n)}, ir.Tensor(ir.F32, n))[0]
			want := make([]float64, n)
			for i := range a {
				want[i] = float64(float32(-0.37)) * float64(a[i])
			}
			closeTo(t, "scale", got, want, 0, 6e-8)
		}
	}
}

func TestBiasAdd(t *testing.T) {
	r := newRand(t)
	for _, be := range testPools {
		for _, shape := range [][]int{{1}, {7}, {1, 33}, {257, 7}, {3, 5, 33}, {257, 257}} {
			n := shape[len(shape)-1]
			total := int(ir.Shape(shape).Elems())
			x, b := normals(r, total, 1), normals(r, n, 1)
			got := runOp(t, be, "bias_add", nil, []arg{f32Arg(x, shape...), f32Arg(b, n)}, ir.Tensor(ir.F32, shape...))[0]
			want := make([]float64, total)
			for i := range x {
				want[i] = float64(x[i]) + float64(b[i%n])
			}
			closeTo(t, "bias_add", got, want, 0, 6e-8)
		}
	}
}

func TestFill(t *testing.T) {
	for _, be := range testPools {
		for _, shape := range [][]int{{}, {7}, {33, 257}} {
			got := runOp(t, be, "fill", ir.Attrs{"value": 0.25, "shape": shape}, nil, ir.Tensor(ir.F32, shape...))[0]
			for i, v := range got {
				if v != 0.25 {
					t.Fatalf("fill %v: [%d] = %v", shape, i, v)
				}
			}
		}
	}
}

// TestElementwiseInPlace runs every in-place-capable element-wise op with
// its output aliasing its first input and compares with the out-of-place run.
func TestElementwiseInPlace(t *testing.T) {
	r := newRand(t)
	be := testPools[1]
	const n = 70000
	for _, op := range []string{"exp", "gelu", "add", "div", "sigmoid_grad", "bias_add"} {
		a, b := uniforms(r, n, 0.5, 2), uniforms(r, n, 0.5, 2)
		at, bt := ir.Tensor(ir.F32, n), ir.Tensor(ir.F32, n)
		if op == "bias_add" {
			at, b, bt = ir.Tensor(ir.F32, n/10, 10), b[:10], ir.Tensor(ir.F32, 10)
		}
		args := []arg{{t: at, f: a}, {t: bt, f: b}}
		if def, _ := ir.LookupOp(op); def.MaxArgs == 1 {
			args = args[:1]
		}
		want := runOp(t, be, op, nil, args, at)[0]

		pb := newPlanBuilder()
		var ins []int
		for i, a := range args {
			ins = append(ins, pb.buf("in"+itoa(i), ir.BufInput, a.t))
		}
		out := pb.alias("out", ins[0])
		pb.kernel("p", op, ins, []int{out}, nil)
		x, err := be.prepare(pb.build())
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range args {
			copy(x.F32(ins[i]), a.f)
		}
		if err := x.Run("p"); err != nil {
			t.Fatal(err)
		}
		for i, v := range x.F32(out) {
			if v != want[i] {
				t.Fatalf("%s in place: [%d] = %v, out of place %v", op, i, v, want[i])
			}
		}
	}
}
