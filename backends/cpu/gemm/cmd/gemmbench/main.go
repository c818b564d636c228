// Command gemmbench prints the median (and best) GFLOP/s of gemm.Sgemm for
// square matrices, for comparison with numpy/OpenBLAS in bench scripts.
//
//	gemmbench -threads 2 -reps 20
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
)

func main() {
	threads := flag.Int("threads", runtime.GOMAXPROCS(0), "worker threads (also sets GOMAXPROCS)")
	reps := flag.Int("reps", 20, "timed repetitions per size (after one warm-up)")
	sizes := flag.String("sizes", "256,512,1024,2048", "comma-separated square sizes")
	transB := flag.Bool("transB", false, "multiply by Bᵀ")
	flag.Parse()

	runtime.GOMAXPROCS(*threads)
	p := pool.New(*threads)
	defer p.Close()
	r := rand.New(rand.NewPCG(1, 2))

	fmt.Printf("kernel=%s threads=%d reps=%d\n", gemm.KernelName(), *threads, *reps)
	fmt.Printf("%6s %12s %12s %12s\n", "n", "median ms", "median GF/s", "best GF/s")
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bad size %q\n", f)
			os.Exit(2)
		}
		a, b, c := randSlice(r, n*n), randSlice(r, n*n), make([]float32, n*n)
		run := func() time.Duration {
			t := time.Now()
			gemm.Sgemm(p, false, *transB, n, n, n, 1, a, n, b, n, 0, c, n)
			return time.Since(t)
		}
		run()
		ts := make([]time.Duration, *reps)
		for i := range ts {
			ts[i] = run()
		}
		slices.Sort(ts)
		med := ts[len(ts)/2]
		flops := 2 * float64(n) * float64(n) * float64(n)
		fmt.Printf("%6d %12.3f %12.1f %12.1f\n", n, med.Seconds()*1e3,
			flops/med.Seconds()/1e9, flops/ts[0].Seconds()/1e9)
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}
