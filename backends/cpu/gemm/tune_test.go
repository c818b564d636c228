package gemm

import (
	"runtime"

	"golang.org/x/sys/unix"
	"os"
	"testing"
	"time"
)

// TestTuneKernel (temporary) reports best-of-N kernel throughput, robust to a
// loaded machine.
func TestTuneKernel(t *testing.T) {
	if os.Getenv("GEMM_TUNE") == "" {
		t.Skip()
	}
	for _, kr := range hostKernels()[:2] {
		for _, kc := range []int{128, 256, 384, 512} {
			const apanels = 86
			a := make([]float32, kc*kr.mr*apanels)
			bp := make([]float32, kc*kr.nr*16)
			const ldc = 1024
			c := make([]float32, 1024*ldc)
			best := time.Hour
			for rep := 0; rep < 3000; rep++ {
				st := time.Now()
				row := (rep * kr.mr) % (1024 - kr.mr)
				for j := 0; j < 16; j++ {
					kr.fn(kc, &a[(rep%apanels)*kc*kr.mr], &bp[j*kc*kr.nr], &c[row*ldc+j*kr.nr], ldc, 1)
				}
				best = min(best, time.Since(st))
			}
			t.Logf("%s kc=%d: %.1f GFLOP/s", kr.name, kc, 2*float64(kc*kr.mr*kr.nr*16)/best.Seconds()/1e9)
		}
	}
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// TestTuneGemm reports single-thread Sgemm throughput measured in thread CPU
// time (best of N), which a loaded machine disturbs much less than wall time.
func TestTuneGemm(t *testing.T) {
	if os.Getenv("GEMM_TUNE") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRand(t)
	for _, s := range benchShapes() {
		ar, ac := s.m, s.k
		if s.transA {
			ar, ac = ac, ar
		}
		br, bc := s.k, s.n
		if s.transB {
			br, bc = bc, br
		}
		a, bm, c := randMat(r, ar, ac, ac), randMat(r, br, bc, bc), randMat(r, s.m, s.n, s.n)
		best, bestW := time.Hour, time.Hour
		reps := max(3, int(3e9/(2*float64(s.m*s.n*s.k))))
		for rep := 0; rep < reps; rep++ {
			st, sw := threadCPU(), time.Now()
			Sgemm(nil, s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
			best = min(best, threadCPU()-st)
			bestW = min(bestW, time.Since(sw))
		}
		f := 2 * float64(s.m*s.n*s.k) / 1e9
		t.Logf("%-28s cpu %.1f GFLOP/s  wall %.1f", s.name, f/best.Seconds(), f/bestW.Seconds())
	}
}

func TestTuneBlocks(t *testing.T) {
	if os.Getenv("GEMM_TUNE") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRand(t)
	for _, n := range []int{1024, 2048} {
		a, bm, c := randMat(r, n, n, n), randMat(r, n, n, n), randMat(r, n, n, n)
		for _, kc := range []int{192, 256, 320, 384, 512} {
			for _, nb := range []int{128, 256, 384, 512} {
				kcMax, nbMax = kc, nb
				best := time.Hour
				for rep := 0; rep < 8*1024/n; rep++ {
					st := threadCPU()
					Sgemm(nil, false, false, n, n, n, 1, a, n, bm, n, 0, c, n)
					best = min(best, threadCPU()-st)
				}
				t.Logf("n=%d kc=%d nb=%d: %.1f", n, kc, nb, 2*float64(n*n*n)/best.Seconds()/1e9)
			}
		}
	}
}
