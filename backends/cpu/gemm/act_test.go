package gemm

import (
	"math"
	"testing"
)

// Reference activations in float64.
func refAct(act Act, x float64) float64 {
	switch act {
	case ReLU:
		if x > 0 {
			return x
		}
		return 0
	case GELU:
		// ½x(1+tanh u) = x·σ(2u), written to avoid float64's own cancellation.
		return x / (1 + math.Exp(-2*geluC*(x+geluA*x*x*x)))
	case Tanh:
		return math.Tanh(x)
	case Sigmoid:
		return 1 / (1 + math.Exp(-x))
	}
	return x
}

func refGrad(act Act, x float64) float64 {
	switch act {
	case ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case GELU:
		if math.Abs(x) > 50 {
			return refGrad(act, math.Copysign(50, x)) // x³ overflows below
		}
		t := math.Tanh(geluC * (x + geluA*x*x*x))
		return 0.5*(1+t) + 0.5*x*(1-t*t)*geluC*(1+3*geluA*x*x)
	case Tanh:
		t := math.Tanh(x)
		return 1 - t*t
	case Sigmoid:
		s := 1 / (1 + math.Exp(-x))
		return s * (1 - s)
	}
	return 1
}

var allActs = []Act{None, ReLU, GELU, Tanh, Sigmoid}

// actInputs spans small, moderate and saturating magnitudes of both signs.
func actInputs() []float32 {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-7, -1e-7, 1e-3, -1e-3,
		0.5, -0.5, 0.75, -0.75, 9, -9, 20, -20, 88, -88, 90, -90, 200, -200, 1e30, -1e30}
	for x := -12.0; x <= 12; x += 0.0137 {
		xs = append(xs, float32(x))
	}
	return xs
}

// Tolerances: forward values within 1e-6 relative plus 1e-12 absolute (the
// tails of GELU and sigmoid, below 1e-12, inherit the rounding of e^x's
// large argument); gradients within 1e-6 absolute (1-tanh² and the GELU
// derivative cancel, so relative error is not meaningful there).
func checkAct(t *testing.T, what string, act Act, x32 float32, got float32, grad bool) {
	t.Helper()
	var want, tol float64
	x := float64(x32)
	if grad {
		want = refGrad(act, x)
		tol = 1e-6
	} else {
		want = refAct(act, x)
		// The float32 argument of e^(...) carries a relative rounding error
		// that the exponential turns into an absolute one of the same size
		// times the argument, so allow for that condition number.
		arg := math.Abs(x)
		if act == GELU {
			arg = math.Abs(2 * geluC * (x + geluA*x*x*x))
		}
		tol = 1e-6*math.Abs(want)*(1+arg) + 1e-12
	}
	if math.IsNaN(want) {
		if !math.IsNaN(float64(got)) {
			t.Errorf("%s %v(%g) = %g, want NaN", what, act, x32, got)
		}
		return
	}
	if !(math.Abs(float64(got)-want) <= tol) {
		t.Errorf("%s %v(%g) = %.9g, want %.9g (grad=%v)", what, act, x32, got, want, grad)
	}
}

func TestActScalar(t *testing.T) {
	for _, act := range allActs {
		if y := ActForward(act, float32(math.NaN())); y == y {
			t.Errorf("ActForward(%v, NaN) = %g", act, y)
		}
	}
	// Small arguments keep full relative precision (no 1 - e^x cancellation).
	for _, x := range []float32{1e-30, -1e-20, 1e-6, -3e-4} {
		if y := ActForward(Tanh, x); math.Abs(float64(y-x)) > 1e-6*math.Abs(float64(x)) {
			t.Errorf("tanh(%g) = %g", x, y)
		}
	}
	for _, act := range allActs {
		for _, x := range actInputs() {
			checkAct(t, "ActForward", act, x, ActForward(act, x), false)
			checkAct(t, "ActGrad", act, x, ActGrad(act, x), true)
		}
	}
}

// TestActSlices checks ApplyAct and MulActGrad on every length up to 50 (all
// vector tails), vectorised and portable.
func TestActSlices(t *testing.T) {
	saved := actVec
	defer func() { actVec = saved }()
	for _, vec := range []bool{true, false} {
		if vec && saved == nil {
			continue
		}
		if !vec {
			actVec = nil
		}
		xs := actInputs()
		for _, act := range allActs {
			for n := 0; n <= 50; n++ {
				for off := 0; off+n <= len(xs); off += 97 {
					in := xs[off : off+n]
					y := append([]float32(nil), in...)
					y = append(y, 12345) // sentinel after the slice
					ApplyAct(act, y[:n])
					g := make([]float32, n+1)
					for i := range g {
						g[i] = 1
					}
					g[n] = 12345
					MulActGrad(act, g[:n], in)
					for i, x := range in {
						checkAct(t, "ApplyAct", act, x, y[i], false)
						checkAct(t, "MulActGrad", act, x, g[i], true)
					}
					if y[n] != 12345 || g[n] != 12345 {
						t.Fatalf("vec=%v %v n=%d: wrote past the end", vec, act, n)
					}
				}
			}
		}
		// Non-finite inputs.
		inf := float32(math.Inf(1))
		nan := float32(math.NaN())
		for _, c := range []struct {
			act  Act
			x    float32
			want float32
		}{{Tanh, inf, 1}, {Tanh, -inf, -1}, {Sigmoid, inf, 1}, {Sigmoid, -inf, 0}, {ReLU, -inf, 0}, {GELU, inf, inf}} {
			y := []float32{c.x}
			ApplyAct(c.act, y)
			if y[0] != c.want {
				t.Errorf("vec=%v %v(%g) = %g, want %g", vec, c.act, c.x, y[0], c.want)
			}
		}
		for _, act := range []Act{ReLU, GELU, Tanh, Sigmoid} {
			y := []float32{nan}
			ApplyAct(act, y)
			if y[0] == y[0] {
				t.Errorf("vec=%v %v(NaN) = %g", vec, act, y[0])
			}
		}
	}
}
