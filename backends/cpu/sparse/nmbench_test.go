package sparse

import (
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"golang.org/x/sys/unix"
)

// BenchmarkNMDirections times each product of the 1024^3 layer with a 2:4
// mask (forward, input gradient, weight gradient) against the dense GEMM
// for the same product, alternating the variants rep by rep so that load
// from other users lands on all of them (this machine is shared). It
// reports the median and best ms of each variant over 31 reps:
//
//	GOMAXPROCS=2 go test -run XXX -bench NMDirections -benchtime 1x ./backends/cpu/sparse
//
// NMBENCH_CPU=1 runs everything on one worker and times it by this
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which leaves out the time
// slices a loaded machine gives to others: the steadiest per-core figures
// here. NMBENCH_DIR=fwd,dx,dw picks the products.
func BenchmarkNMDirections(b *testing.B) {
	const n, reps = 1024, 31
	s := Shape{Batch: n, Rows: n, Cols: n}
	r := rand.New(rand.NewPCG(1, 2))
	p := pool.Default()
	now := func() time.Duration { return time.Duration(time.Now().UnixNano()) }
	if os.Getenv("NMBENCH_CPU") != "" {
		p = nil
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		now = func() time.Duration {
			var ts unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
			return time.Duration(ts.Nano())
		}
	}
	a, w, dy, c := randVec(r, n*n), randVec(r, n*n), randVec(r, n*n), make([]float32, n*n)
	m := randomMask(r, "nm", n, n, 0)
	type variant struct {
		name string
		run  func()
	}
	names := map[Dir]string{Forward: "fwd", Input: "dx", Weight: "dw"}
	var vs []variant
	for _, dir := range []Dir{Forward, Input, Weight} {
		if d := os.Getenv("NMBENCH_DIR"); d != "" && !slices.Contains(strings.Split(d, ","), names[dir]) {
			continue
		}
		ta, tb := dir == Weight, dir == Input
		vs = append(vs, variant{"gemm/" + names[dir], func() { gemm.Sgemm(p, ta, tb, n, n, n, 1, a, n, w, n, 0, c, n) }})
		k := NewNM(s, dir, 2)
		k.Build(m)
		vs = append(vs, variant{"nm/" + names[dir], func() { k.Run(p, a, w, dy, c, nil) }})
	}
	for b.Loop() {
		ts := make([][]time.Duration, len(vs))
		for rep := -2; rep < reps; rep++ {
			for i, v := range vs {
				t0 := now()
				v.run()
				if rep >= 0 {
					ts[i] = append(ts[i], now()-t0)
				}
			}
		}
		for i, v := range vs {
			slices.Sort(ts[i])
			b.ReportMetric(ts[i][reps/2].Seconds()*1e3, v.name+"-ms")
			b.ReportMetric(ts[i][0].Seconds()*1e3, v.name+"-best-ms")
		}
	}
}
