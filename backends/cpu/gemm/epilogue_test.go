package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

type epCase struct {
	transA, transB bool
	m, n, k        int
	pad            int
	act            Act
	bias, grad     bool
	accumulate     bool
}

func (c epCase) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d pad=%d act=%v bias=%v grad=%v acc=%v",
		c.transA, c.transB, c.m, c.n, c.k, c.pad, c.act, c.bias, c.grad, c.accumulate)
}

// runEpCase checks SgemmEpilogue against float64: v = A·B (+C) (+bias), then
// act(v) or v·act'(pre). Tolerance: ‖C − ref‖_F ≤ (tolFactor·√k + 2e-6)·‖M‖_F
// with M = 1.2·(|A|·|B| + |C| + |bias|) + |ref|: the magnitudes of the
// product scaled by the largest slope of the activations (GELU's 1.13), plus
// the result itself, whose own rounding the 2e-6 covers.
func runEpCase(t *testing.T, r *rand.Rand, p *pool.Pool, c epCase) {
	t.Helper()
	ar, ac := c.m, c.k
	if c.transA {
		ar, ac = ac, ar
	}
	br, bc := c.k, c.n
	if c.transB {
		br, bc = bc, br
	}
	lda, ldb, ldc := ac+c.pad, bc+c.pad, c.n+2*c.pad
	a, b := randMat(r, ar, ac, lda), randMat(r, br, bc, ldb)
	cm := randMat(r, c.m, c.n, ldc)
	for i := range cm { // spread values over the interesting range of the activations
		cm[i] *= 3
	}
	c0 := append([]float32(nil), cm...)
	ep := Epilogue{Act: c.act, Accumulate: c.accumulate}
	if c.bias {
		ep.Bias = randMat(r, 1, c.n, c.n)
	}
	if c.grad {
		ep.ActGradOf = randMat(r, c.m, c.n, ldc)
		for i := range ep.ActGradOf {
			ep.ActGradOf[i] *= 4
		}
	}
	beta := 0.0
	if c.accumulate {
		beta = 1
	}
	prod, mag := refGemm(c.transA, c.transB, c.m, c.n, c.k, 1, a, lda, b, ldb, beta, cm, ldc)
	want := make([]float64, len(prod))
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			v := prod[i*c.n+j]
			if c.bias {
				v += float64(ep.Bias[j])
				mag[i*c.n+j] += math.Abs(float64(ep.Bias[j]))
			}
			if c.grad {
				v *= refGrad(c.act, float64(ep.ActGradOf[i*ldc+j]))
			} else {
				v = refAct(c.act, v)
			}
			want[i*c.n+j] = v
			mag[i*c.n+j] = 1.2*mag[i*c.n+j] + math.Abs(v)
		}
	}
	SgemmEpilogue(p, c.transA, c.transB, c.m, c.n, c.k, a, lda, b, ldb, cm, ldc, ep)
	if e, tol := relErr(cm, ldc, want, mag, c.m, c.n), tolFactor*math.Sqrt(float64(max(c.k, 1)))+2e-6; !(e <= tol) {
		t.Fatalf("%v: relative error %.3g > %.3g", c, e, tol)
	}
	checkGaps(t, cm, c0, c.m, c.n, ldc)
}

func epCases() []epCase {
	var cs []epCase
	shapes := [][3]int{{1, 1, 1}, {7, 33, 5}, {33, 7, 257}, {30, 70, 40}, {13, 100, 1}}
	i := 0
	for _, act := range allActs {
		for _, mode := range []struct{ bias, grad, acc bool }{
			{false, false, false}, {true, false, false}, {false, true, false}, {true, false, true}, {false, true, true},
		} {
			for _, s := range shapes {
				cs = append(cs, epCase{i%2 == 1, i/2%2 == 1, s[0], s[1], s[2], i % 3, act, mode.bias, mode.grad, mode.acc})
				i++
			}
		}
	}
	return cs
}

func TestSgemmEpilogue(t *testing.T) {
	p := pool.New(2)
	defer p.Close()
	savedVec := actVec
	defer func() { actVec = savedVec }()
	forEachKernel(t, func(t *testing.T) {
		for _, vec := range []bool{true, false} {
			if vec && savedVec == nil {
				continue
			}
			actVec = savedVec
			if !vec {
				actVec = nil
			}
			r := newRand(t)
			for _, c := range epCases() {
				runEpCase(t, r, p, c)
			}
			// Several k-blocks: the epilogue must run once, after the last.
			withBlocking(16, 64, 24, func() {
				runEpCase(t, r, p, epCase{false, true, 50, 90, 70, 1, GELU, true, false, true})
				runEpCase(t, r, p, epCase{true, false, 50, 90, 70, 0, Tanh, false, true, false})
				runEpCase(t, r, p, epCase{false, false, 50, 90, 70, 2, ReLU, true, false, false})
			})
		}
	})
}

func TestSgemmEpilogueK0(t *testing.T) {
	// k = 0: C = act(0 + bias), or act(C + bias) when accumulating.
	c := []float32{-1, 2}
	SgemmEpilogue(nil, false, false, 1, 2, 0, nil, 1, nil, 2, c, 2, Epilogue{Bias: []float32{0.5, -3}, Act: ReLU, Accumulate: true})
	if c[0] != 0 || c[1] != 0 {
		t.Fatalf("got %v", c)
	}
	SgemmEpilogue(nil, false, false, 1, 2, 0, nil, 1, nil, 2, c, 2, Epilogue{Bias: []float32{0.5, -3}, Act: ReLU})
	if c[0] != 0.5 || c[1] != 0 {
		t.Fatalf("got %v", c)
	}
}
