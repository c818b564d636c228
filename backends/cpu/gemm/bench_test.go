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
	// dX = dY·Wᵀ for each layer.
	for _, l := range [][2]int{{784, 512}, {512, 256}, {256, 10}} {
		in, out := l[0], l[1]
		s = append(s,
			benchShape{fmt.Sprintf("mlp/fwd/256x%dx%d", in, out), false, false, 256, out, in},
			benchShape{fmt.Sprintf("mlp/dW/%dx%dx256", in, out), true, false, in, out, 256},
			benchShape{fmt.Sprintf("mlp/dX/256x%dx%d", out, in), false, true, 256, in, out},
		)
	}
	return s
}

func BenchmarkSgemm(b *testing.B) {
	p := pool.Default()
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range benchShapes() {
		b.Run(s.name, func(b *testing.B) {
			ar, ac := s.m, s.k
			if s.transA {
				ar, ac = ac, ar
			}
			br, bc := s.k, s.n
			if s.transB {
				br, bc = bc, br
			}
			a, bm, c := randMat(r, ar, ac, ac), randMat(r, br, bc, bc), randMat(r, s.m, s.n, s.n)
			Sgemm(p, s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
			b.ResetTimer()
			for b.Loop() {
				Sgemm(p, s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
			}
			b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkEpilogue(b *testing.B) {
	p := pool.Default()
	r := rand.New(rand.NewPCG(1, 2))
	m, n, k := 256, 512, 784
	a, bm, c := randMat(r, m, k, k), randMat(r, k, n, n), randMat(r, m, n, n)
	bias, pre := randMat(r, 1, n, n), randMat(r, m, n, n)
	for _, act := range []Act{None, ReLU, GELU, Tanh, Sigmoid} {
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
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
