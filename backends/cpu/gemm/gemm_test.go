package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Tolerance: ‖C − C₆₄‖_F / ‖|α|·|op(A)|·|op(B)| + |β|·|C|‖_F ≤ tolFactor·√k,
// where C₆₄ is a float64 reference on the same inputs. Normalising by the
// magnitudes (not by ‖C₆₄‖) keeps the bound meaningful when a dot product
// cancels. float32 rounding grows like ε·√k for random signs (ε ≈ 6e-8), so
// this leaves a 15x margin, while any indexing or packing bug gives errors
// of order 1.
const tolFactor = 1e-6

func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// randMat returns rows x cols values in [-1, 1) stored with stride ld; the
// gaps between rows hold NaN so any read of them poisons the result.
func randMat(r *rand.Rand, rows, cols, ld int) []float32 {
	x := make([]float32, max(0, (rows-1)*ld+cols))
	for i := range x {
		x[i] = float32(math.NaN())
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			x[i*ld+j] = 2*r.Float32() - 1
		}
	}
	return x
}

// refGemm computes alpha·op(A)·op(B) + beta·C in float64, and the same
// expression on absolute values (the scale of the rounding errors).
func refGemm(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) (out, mag []float64) {
	out = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
				sa += math.Abs(float64(av) * float64(bv))
			}
			s *= alpha
			sa *= math.Abs(alpha)
			if beta != 0 {
				s += beta * float64(c[i*ldc+j])
				sa += math.Abs(beta * float64(c[i*ldc+j]))
			}
			out[i*n+j], mag[i*n+j] = s, sa
		}
	}
	return out, mag
}

// relErr compares the m x n matrix got (stride ldc) with want, relative to
// the magnitudes mag.
func relErr(got []float32, ldc int, want, mag []float64, m, n int) float64 {
	var num, den float64
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			d := float64(got[i*ldc+j]) - want[i*n+j]
			num += d * d
			den += mag[i*n+j] * mag[i*n+j]
		}
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// checkGaps fails if Sgemm wrote between the rows of C (ldc > n).
func checkGaps(t *testing.T, c, c0 []float32, m, n, ldc int) {
	t.Helper()
	for i := 0; i < m-1; i++ {
		for j := n; j < ldc; j++ {
			if math.Float32bits(c[i*ldc+j]) != math.Float32bits(c0[i*ldc+j]) {
				t.Fatalf("wrote outside C at (%d,%d)", i, j)
			}
		}
	}
}

// withKernel runs f with each micro-kernel this CPU supports.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	saved := active
	defer func() { active = saved }()
	for _, k := range hostKernels() {
		active = k
		t.Run(k.name, f)
	}
}

// withBlocking shrinks the cache blocks so small matrices cross many block
// boundaries (several k-blocks with beta handling, several A and B blocks).
func withBlocking(kc, nb, mb int, f func()) {
	skc, snb, smb := kcMax, nbMax, mbMax
	kcMax, nbMax, mbMax = kc, nb, mb
	defer func() { kcMax, nbMax, mbMax = skc, snb, smb }()
	f()
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	pad            int // extra stride beyond the minimum
	alpha, beta    float32
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d pad=%d alpha=%g beta=%g",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad, tc.alpha, tc.beta)
}

func runCase(t *testing.T, r *rand.Rand, p *pool.Pool, tc gemmCase) {
	t.Helper()
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = ac, ar
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = bc, br
	}
	lda, ldb, ldc := ac+tc.pad, bc+2*tc.pad, tc.n+3*tc.pad
	a := randMat(r, ar, ac, lda)
	b := randMat(r, br, bc, ldb)
	c := randMat(r, tc.m, tc.n, ldc)
	if tc.beta == 0 { // beta = 0 must not read C
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	c0 := append([]float32(nil), c...)
	want, mag := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, float64(tc.alpha), a, lda, b, ldb, float64(tc.beta), c, ldc)
	Sgemm(p, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	if e, tol := relErr(c, ldc, want, mag, tc.m, tc.n), tolFactor*math.Sqrt(float64(max(tc.k, 1))); !(e <= tol) {
		t.Fatalf("%v: relative error %.3g > %.3g", tc, e, tol)
	}
	checkGaps(t, c, c0, tc.m, tc.n, ldc)
}

var (
	dims   = []int{1, 7, 33, 257}
	alphas = []float32{1, -0.7, 1.5}
	betas  = []float32{0, 1, 0.5}
)

// allCases covers every transpose combination and every dims³ shape, with
// strides, alpha and beta cycling through their values.
func allCases() []gemmCase {
	var cs []gemmCase
	i := 0
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range dims {
				for _, n := range dims {
					for _, k := range dims {
						cs = append(cs, gemmCase{tA, tB, m, n, k, i % 3 * 5, alphas[i%3], betas[i/3%3]})
						i++
					}
				}
			}
		}
	}
	return cs
}

func TestSgemm(t *testing.T) {
	p := pool.New(2)
	defer p.Close()
	forEachKernel(t, func(t *testing.T) {
		r := newRand(t)
		for _, tc := range allCases() {
			runCase(t, r, p, tc)
		}
	})
}

// TestSgemmBlocks forces small cache blocks and parallel splitting so the
// multi-block paths run on small, quick matrices.
func TestSgemmBlocks(t *testing.T) {
	p := pool.New(3)
	defer p.Close()
	saved := minFlopsPerWorker
	minFlopsPerWorker = 1
	defer func() { minFlopsPerWorker = saved }()
	forEachKernel(t, func(t *testing.T) {
		r := newRand(t)
		withBlocking(40, 96, 48, func() {
			for _, tc := range []gemmCase{
				{false, false, 100, 130, 90, 1, 1, 0},
				{true, false, 130, 100, 121, 0, -0.7, 1},
				{false, true, 61, 300, 85, 2, 1.5, 0.5},
				{true, true, 257, 33, 257, 3, 1, 0.5},
				{false, false, 5, 500, 200, 0, 1, 1},
				{true, true, 500, 5, 200, 1, 1, 0},
			} {
				runCase(t, r, p, tc)
			}
		})
		// Default blocking with k spanning several kc blocks.
		runCase(t, r, p, gemmCase{false, true, 70, 90, 2*kcMax + 17, 1, 1, 0.5})
		runCase(t, r, nil, gemmCase{true, false, 50, 40, kcMax + 1, 0, 1, 0})
	})
}

func TestSgemmDegenerate(t *testing.T) {
	r := newRand(t)
	// k == 0 and alpha == 0: C = beta·C without touching A or B.
	c := randMat(r, 3, 4, 4)
	want := append([]float32(nil), c...)
	for i := range want {
		want[i] *= 0.5
	}
	Sgemm(nil, false, false, 3, 4, 0, 1, nil, 1, nil, 4, 0.5, c, 4)
	for i := range c {
		if c[i] != want[i] {
			t.Fatalf("k=0: c[%d]=%v want %v", i, c[i], want[i])
		}
	}
	Sgemm(nil, false, false, 3, 4, 5, 0, make([]float32, 15), 5, make([]float32, 20), 4, 0, c, 4)
	for i := range c {
		if c[i] != 0 {
			t.Fatalf("alpha=0, beta=0: c[%d]=%v", i, c[i])
		}
	}
	Sgemm(nil, false, false, 0, 4, 5, 1, nil, 5, nil, 4, 0, nil, 4) // m = 0: no-op
}

func TestSgemmAllocs(t *testing.T) {
	p := pool.New(2)
	defer p.Close()
	r := newRand(t)
	m, n, k := 200, 300, 150
	a, b, c := randMat(r, m, k, k), randMat(r, k, n, n), randMat(r, m, n, n)
	bias := randMat(r, 1, n, n)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Sgemm", func() { Sgemm(p, false, true, m, n, k, 1, a, k, b, k, 0, c, n) }},
		{"Epilogue", func() {
			SgemmEpilogue(p, false, false, m, n, k, a, k, b, n, c, n, Epilogue{Bias: bias, Act: GELU})
		}},
	} {
		tc.f() // grow the buffers
		if got := testing.AllocsPerRun(20, tc.f); got != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, got)
		}
	}
}

// TestSgemmPoolLargerThanWork uses a pool with more workers than the
// problem is split for (the flop threshold limits the split), which must not
// hand tasks to workers without buffers.
func TestSgemmPoolLargerThanWork(t *testing.T) {
	p := pool.New(4)
	defer p.Close()
	r := newRand(t)
	for i := 0; i < 20; i++ {
		runCase(t, r, p, gemmCase{false, false, 8, 1024, 256, 0, 1, 0})
		runCase(t, r, p, gemmCase{false, true, 600, 20, 200, 1, 1, 1})
	}
}
