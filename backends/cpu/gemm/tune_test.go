package gemm

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Tuning reports, run only with GEMM_TUNE=1:
//
//	GEMM_TUNE=1 go test -run Tune -v ./backends/cpu/gemm
//
// They time one thread in thread CPU time and keep the best of many runs,
// which other processes on a shared machine disturb far less than the wall
// time of a benchmark. Use them to compare blockings and kernels; report
// throughput with the benchmarks or cmd/gemmbench.

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// bestCPU returns the least thread CPU time of reps calls of f.
func bestCPU(reps int, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := time.Hour
	for range reps {
		st := threadCPU()
		f()
		best = min(best, threadCPU()-st)
	}
	return best
}

func skipUnlessTuning(t *testing.T) {
	if os.Getenv("GEMM_TUNE") == "" {
		t.Skip("set GEMM_TUNE=1")
	}
}

// TestTuneKernel: micro-kernels alone, A panel fixed, 16 B panels streaming
// from L2, C a 1024-wide matrix (its rows alias in L1, as in real use).
func TestTuneKernel(t *testing.T) {
	skipUnlessTuning(t)
	for _, kr := range append(hostKernels(), avx512Narrow()...) {
		for _, kc := range []int{128, 256, 384, 512} {
			a := make([]float32, kc*kr.mr)
			bp := make([]float32, kc*kr.nr*16)
			const ldc = 1024
			c := make([]float32, kr.mr*ldc)
			d := bestCPU(2000, func() {
				for j := 0; j < 16; j++ {
					kr.fn(kc, &a[0], &bp[j*kc*kr.nr], &c[j*kr.nr], ldc, 1)
				}
			})
			t.Logf("%-10s kc=%d: %.1f GFLOP/s", kr.name, kc, 2*float64(kc*kr.mr*kr.nr*16)/d.Seconds()/1e9)
		}
	}
}

func avx512Narrow() []*kernel {
	if k := hostKernels()[0]; k.narrow != nil {
		return []*kernel{k.narrow}
	}
	return nil
}

// TestTuneGemm: single-thread Sgemm on the benchmark shapes.
func TestTuneGemm(t *testing.T) {
	skipUnlessTuning(t)
	r := newRand(t)
	for _, s := range benchShapes() {
		a, bm, c, lda, ldb := shapeMats(r, s)
		f := 2 * float64(s.m*s.n*s.k) / 1e9
		d := bestCPU(max(3, int(3/f)), func() {
			Sgemm(nil, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
		})
		t.Logf("%-28s %.1f GFLOP/s", s.name, f/d.Seconds())
	}
}

// TestTuneBlocks: single-thread Sgemm over a grid of kc and nb.
func TestTuneBlocks(t *testing.T) {
	skipUnlessTuning(t)
	skc, snb := kcMax, nbMax
	defer func() { kcMax, nbMax = skc, snb }()
	r := newRand(t)
	for _, n := range []int{1024, 2048} {
		a, bm, c := randMat(r, n, n, n), randMat(r, n, n, n), randMat(r, n, n, n)
		for _, kc := range []int{192, 256, 320, 400, 512} {
			for _, nb := range []int{128, 256, 384, 512} {
				kcMax, nbMax = kc, nb
				d := bestCPU(8*1024/n, func() { Sgemm(nil, false, false, n, n, n, 1, a, n, bm, n, 0, c, n) })
				t.Logf("n=%d kc=%d nb=%d: %.1f GFLOP/s", n, kc, nb, 2*float64(n*n*n)/d.Seconds()/1e9)
			}
		}
	}
}

// TestTunePack: packing throughput (set PACK_LD to try other strides; powers
// of two are the slow case for the transposing layouts).
func TestTunePack(t *testing.T) {
	skipUnlessTuning(t)
	n, kc := 1024, 342
	if v := os.Getenv("PACK_LD"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	src := make([]float32, n*n)
	dst := make([]float32, n*kc+4096)
	for _, c := range []struct {
		name string
		f    func()
		el   int
	}{
		{"A", func() { packA(dst, src, n, false, 0, n, 0, kc, 12, 1, 0, ceilDiv(n, 12)) }, n * kc},
		{"Aᵀ", func() { packA(dst, src, n, true, 0, n, 0, kc, 12, 1, 0, ceilDiv(n, 12)) }, n * kc},
		{"B", func() { packB(dst, src, n, false, 0, kc, 0, 512, 32) }, 512 * kc},
		{"Bᵀ", func() { packB(dst, src, n, true, 0, kc, 0, 512, 32) }, 512 * kc},
	} {
		d := bestCPU(50, c.f)
		t.Logf("pack %s: %.2f Gelem/s", c.name, float64(c.el)/d.Seconds()/1e9)
	}
}

// TestTuneEpilogue: the cost of each fused epilogue on the first MLP layer.
func TestTuneEpilogue(t *testing.T) {
	skipUnlessTuning(t)
	r := newRand(t)
	m, n, k := 256, 512, 784
	a, bm, c := randMat(r, m, k, k), randMat(r, k, n, n), randMat(r, m, n, n)
	bias, pre := randMat(r, 1, n, n), randMat(r, m, n, n)
	for _, act := range allActs {
		for _, grad := range []bool{false, true} {
			ep := Epilogue{Bias: bias, Act: act}
			if grad {
				ep = Epilogue{Act: act, ActGradOf: pre}
			}
			d := bestCPU(30, func() { SgemmEpilogue(nil, false, false, m, n, k, a, k, bm, n, c, n, ep) })
			t.Logf("%-7v grad=%-5v: %.1f GFLOP/s (%.0f µs)", act, grad, 2*float64(m*n*k)/d.Seconds()/1e9, d.Seconds()*1e6)
		}
	}
}

// TestTuneAct: per-element cost of the activations, vector and portable.
func TestTuneAct(t *testing.T) {
	skipUnlessTuning(t)
	r := newRand(t)
	x := randMat(r, 1, 4096, 4096)
	y := make([]float32, len(x))
	for _, act := range allActs[1:] {
		d := bestCPU(200, func() { copy(y, x); applyActGo(act, y, nil) })
		g := bestCPU(200, func() { copy(y, x); mulActGradGo(act, y, x) })
		msg := fmt.Sprintf("%-7v go: fwd %.2f ns/elem, grad %.2f", act, float64(d.Nanoseconds())/4096, float64(g.Nanoseconds())/4096)
		if actVec != nil {
			d := bestCPU(200, func() { copy(y, x); ApplyAct(act, y) })
			g := bestCPU(200, func() { copy(y, x); MulActGrad(act, y, x) })
			msg += fmt.Sprintf("; vector: fwd %.2f, grad %.2f", float64(d.Nanoseconds())/4096, float64(g.Nanoseconds())/4096)
		}
		t.Log(msg)
	}
}

// TestTuneParallel: wall time with a two-worker pool over a few column-block
// widths (needs a quiet machine).
func TestTuneParallel(t *testing.T) {
	skipUnlessTuning(t)
	stpw := tasksPerWorker
	defer func() { tasksPerWorker = stpw }()
	p := pool.New(2)
	defer p.Close()
	r := newRand(t)
	shapes := benchShapes()[1:8]
	for _, s := range shapes {
		a, bm, c, lda, ldb := shapeMats(r, s)
		f := 2 * float64(s.m*s.n*s.k)
		for _, tpw := range []int{1, 2, 4} {
			tasksPerWorker = tpw
			var ts []time.Duration
			for range max(5, int(2e9/f)) {
				st := time.Now()
				Sgemm(p, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
				ts = append(ts, time.Since(st))
			}
			slices.Sort(ts)
			t.Logf("%-24s tasks/worker=%d: median %.1f best %.1f GFLOP/s", s.name, tpw, f/ts[len(ts)/2].Seconds()/1e9, f/ts[0].Seconds()/1e9)
		}
	}
}
