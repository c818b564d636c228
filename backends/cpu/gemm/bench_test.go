package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Run with GOMAXPROCS=2 to match the target machine:
//
//	GOMAXPROCS=2 go test -run '^$' -bench . ./backends/cpu/gemm
//
// Wall-time benchmarks on a shared machine vary by tens of percent between
// runs; see tune_test.go for steadier single-thread measurements.

type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

func benchShapes() []benchShape {
	var s []benchShape
	for _, n := range []int{256, 512, 1024, 2048} {
		s = append(s, benchShape{fmt.Sprintf("square/%d", n), false, false, n, n, n})
	}
	// MLP 784-512-256-10, batch 256: forward X·W, backward dW = Xᵀ·dY and
	// dX = dY·Wᵀ for each layer (W stored in x out).
	for _, l := range [][2]int{{784, 512}, {512, 256}, {256, 10}} {
		in, out := l[0], l[1]
		s = append(s,
			benchShape{fmt.Sprintf("mlp/fwd/256x%dx%d", in, out), false, false, 256, out, in},
			benchShape{fmt.Sprintf("mlp/dW/%dx%dx256", in, out), true, false, in, out, 256},
			benchShape{fmt.Sprintf("mlp/dX/256x%dx%d", in, out), false, true, 256, in, out},
		)
	}
	return s
}

// shapeMats returns random operands for s and their strides.
func shapeMats(r *rand.Rand, s benchShape) (a, b, c []float32, lda, ldb int) {
	ar, ac := s.m, s.k
	if s.transA {
		ar, ac = ac, ar
	}
	br, bc := s.k, s.n
	if s.transB {
		br, bc = bc, br
	}
	return randMat(r, ar, ac, ac), randMat(r, br, bc, bc), randMat(r, s.m, s.n, s.n), ac, bc
}

func reportGFLOPS(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkSgemm(b *testing.B) {
	p := pool.Default()
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range benchShapes() {
		b.Run(s.name, func(b *testing.B) {
			a, bm, c, lda, ldb := shapeMats(r, s)
			Sgemm(p, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			for b.Loop() {
				Sgemm(p, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			}
			reportGFLOPS(b, 2*float64(s.m)*float64(s.n)*float64(s.k))
		})
	}
}

// BenchmarkEpilogue runs the first MLP layer with each fused epilogue; compare
// with BenchmarkSgemm/mlp/fwd/256x784x512.
func BenchmarkEpilogue(b *testing.B) {
	p := pool.Default()
	r := rand.New(rand.NewPCG(1, 2))
	m, n, k := 256, 512, 784
	a, bm, c := randMat(r, m, k, k), randMat(r, k, n, n), randMat(r, m, n, n)
	bias, pre := randMat(r, 1, n, n), randMat(r, m, n, n)
	for _, act := range allActs {
		for _, grad := range []bool{false, true} {
			ep := Epilogue{Bias: bias, Act: act}
			name := "fwd"
			if grad {
				ep = Epilogue{Act: act, ActGradOf: pre}
				name = "grad"
			}
			b.Run(fmt.Sprintf("%s/%v", name, act), func(b *testing.B) {
				for b.Loop() {
					SgemmEpilogue(p, false, false, m, n, k, a, k, bm, n, c, n, ep)
				}
				reportGFLOPS(b, 2*float64(m*n*k))
			})
		}
	}
}

// BenchmarkKernel measures each micro-kernel alone: one A panel against 16 B
// panels (from L2), kc = 384.
func BenchmarkKernel(b *testing.B) {
	for _, kr := range append(hostKernels(), avx512Narrow()...) {
		b.Run(kr.name, func(b *testing.B) {
			const kc = 384
			a := make([]float32, kc*kr.mr)
			bp := make([]float32, kc*kr.nr*16)
			c := make([]float32, kr.mr*kr.nr*16)
			for b.Loop() {
				for j := 0; j < 16; j++ {
					kr.fn(kc, &a[0], &bp[j*kc*kr.nr], &c[j*kr.nr], kr.nr*16, 1)
				}
			}
			reportGFLOPS(b, 2*float64(kc*kr.mr*kr.nr*16))
		})
	}
}

func BenchmarkAct(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4096)
	pre := make([]float32, 4096)
	for i := range x {
		x[i] = 6*r.Float32() - 3
		pre[i] = 6*r.Float32() - 3
	}
	y := make([]float32, len(x))
	for _, act := range allActs[1:] {
		b.Run("fwd/"+act.String(), func(b *testing.B) {
			for b.Loop() {
				copy(y, x)
				ApplyAct(act, y)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/elem")
		})
		b.Run("grad/"+act.String(), func(b *testing.B) {
			for b.Loop() {
				copy(y, x)
				MulActGrad(act, y, pre)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/elem")
		})
	}
}
