package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// refMatmul returns op(a)·op(b) in float64 and, per element, Σ|a·b| (the
// scale of the float32 rounding error).
func refMatmul(a, b []float32, m, n, k int, ta, tb bool) (c, mag []float64) {
	c, mag = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, sa float64
			for p := range k {
				av := a[i*k+p]
				if ta {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if tb {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
				sa += math.Abs(float64(av) * float64(bv))
			}
			c[i*n+j], mag[i*n+j] = s, sa
		}
	}
	return c, mag
}

// matmulClose checks |got − want| ≤ 1e-6 + 2e-6·Σ|a·b|: float32 accumulation
// over k ≤ 257 terms in blocks keeps the error well inside that (the
// worst-case bound is k·2⁻²⁴·Σ|a·b|; observed errors are ~√k·2⁻²⁴).
func matmulClose(t *testing.T, what string, got []float32, want, mag []float64) {
	t.Helper()
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= 1e-6+2e-6*mag[i]) {
			t.Fatalf("%s[%d] = %.9g, want %.9g (Σ|ab| %.3g)", what, i, got[i], want[i], mag[i])
		}
	}
}

var matmulShapes = [][3]int{{1, 1, 1}, {7, 33, 1}, {33, 7, 257}, {257, 33, 7}, {1, 257, 33}, {257, 257, 33}, {33, 1, 257}}

func matmulOperands(m, n, k int, ta, tb bool) (at, bt ir.Type) {
	at, bt = ir.Tensor(ir.F32, m, k), ir.Tensor(ir.F32, k, n)
	if ta {
		at = ir.Tensor(ir.F32, k, m)
	}
	if tb {
		bt = ir.Tensor(ir.F32, n, k)
	}
	return at, bt
}

func TestMatmul(t *testing.T) {
	r := newRand(t)
	for _, be := range testPools {
		for _, s := range matmulShapes {
			m, n, k := s[0], s[1], s[2]
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					at, bt := matmulOperands(m, n, k, ta, tb)
					a, b := normals(r, m*k, 1), normals(r, k*n, 1)
					attrs := ir.Attrs{"transpose_a": ta, "transpose_b": tb}
					got := runOp(t, be, "matmul", attrs, []arg{{t: at, f: a}, {t: bt, f: b}}, ir.Tensor(ir.F32, m, n))[0]
					want, mag := refMatmul(a, b, m, n, k, ta, tb)
					matmulClose(t, fmt.Sprintf("matmul %dx%dx%d ta=%v tb=%v", m, n, k, ta, tb), got, want, mag)
				}
			}
		}
	}
}

var actRefs = map[string]struct{ f, d func(float64) float64 }{
	"none":    {func(x float64) float64 { return x }, func(float64) float64 { return 1 }},
	"relu":    {func(x float64) float64 { return max(x, 0) }, func(x float64) float64 { return float64(b2i(x > 0)) }},
	"gelu":    {gelu64, gelu64Grad},
	"tanh":    {math.Tanh, func(x float64) float64 { return 1 - math.Tanh(x)*math.Tanh(x) }},
	"sigmoid": {sigmoid64, func(x float64) float64 { return sigmoid64(x) * (1 - sigmoid64(x)) }},
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMatmulEpilogues checks matmul_bias_act (with and without a bias) and
// matmul_act_grad for every activation. The tolerance adds the activation's
// few-ulp error to matmulClose's: an error e in the product moves act(v) by
// at most |act'|·e ≤ e (all activations here have |act'| ≤ 1.13).
func TestMatmulEpilogues(t *testing.T) {
	r := newRand(t)
	for _, be := range testPools {
		for _, s := range matmulShapes {
			m, n, k := s[0], s[1], s[2]
			for name, act := range actRefs {
				ta, tb := m%2 == 1, k%2 == 0 // vary the layouts without multiplying the cases
				at, bt := matmulOperands(m, n, k, ta, tb)
				a, b := normals(r, m*k, 1), normals(r, k*n, 1)
				prod, mag := refMatmul(a, b, m, n, k, ta, tb)
				attrs := ir.Attrs{"transpose_a": ta, "transpose_b": tb, "act": name}
				ct := ir.Tensor(ir.F32, m, n)

				bias := normals(r, n, 1)
				got := runOp(t, be, "matmul_bias_act", attrs, []arg{{t: at, f: a}, {t: bt, f: b}, f32Arg(bias, n)}, ct)[0]
				nobias := runOp(t, be, "matmul_bias_act", attrs, []arg{{t: at, f: a}, {t: bt, f: b}}, ct)[0]
				pre := normals(r, m*n, 2)
				grad := runOp(t, be, "matmul_act_grad", attrs, []arg{{t: at, f: a}, {t: bt, f: b}, f32Arg(pre, m, n)}, ct)[0]
				for i := range prod {
					tol := 1.2*(1e-6+2e-6*mag[i]) + 1e-6
					v := prod[i] + float64(bias[i%n])
					checks := []struct {
						what      string
						got, want float64
						tol       float64
					}{
						{"bias", float64(got[i]), act.f(v), tol + 1e-6*math.Abs(v)},
						{"no bias", float64(nobias[i]), act.f(prod[i]), tol + 1e-6*math.Abs(prod[i])},
						{"grad", float64(grad[i]), prod[i] * act.d(float64(pre[i])), tol + 2e-6*math.Abs(prod[i])},
					}
					for _, c := range checks {
						if d := math.Abs(c.got - c.want); !(d <= c.tol) {
							t.Fatalf("%s %s %dx%dx%d [%d]: %.9g, want %.9g", name, c.what, m, n, k, i, c.got, c.want)
						}
					}
				}
			}
		}
	}
}
