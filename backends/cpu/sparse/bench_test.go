package sparse

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
)

// BenchmarkLayer times each product of a 1024x1024 masked linear layer on a
// batch of 1024 (GOMAXPROCS=2 to match the target machine); bench/sparse.sh
// is the end-to-end comparison with the dense GEMM and PyTorch.
func BenchmarkLayer(b *testing.B) {
	const n = 1024
	s := Shape{Batch: n, Rows: n, Cols: n}
	r := rand.New(rand.NewPCG(1, 2))
	p := pool.Default()
	a, w, dy, c := randVec(r, n*n), randVec(r, n*n), randVec(r, n*n), make([]float32, n*n)
	b.Run("gemm/fwd", func(b *testing.B) {
		for b.Loop() {
			gemm.Sgemm(p, false, false, n, n, n, 1, a, n, w, n, 0, c, n)
		}
	})
	b.Run("gemm/dx", func(b *testing.B) {
		for b.Loop() {
			gemm.Sgemm(p, false, true, n, n, n, 1, a, n, w, n, 0, c, n)
		}
	})
	b.Run("gemm/dw", func(b *testing.B) {
		for b.Loop() {
			gemm.Sgemm(p, true, false, n, n, n, 1, a, n, w, n, 0, c, n)
		}
	})
	for _, kind := range []string{"nm", "block", "unstructured"} {
		m := randomMask(r, kind, n, n, 0.1)
		kerns := map[string]string{"nm": "nm", "block": "block", "unstructured": "lists"}
		for _, dir := range []Dir{Forward, Input, Weight} {
			var k Kernel
			switch {
			case kerns[kind] == "block":
				k = NewBlock(s, dir)
			case kerns[kind] == "nm":
				k = NewNM(s, dir, 2)
			case dir == Weight:
				k = NewSDDMM(s)
			default:
				k = NewLists(s, dir)
			}
			k.Build(m)
			b.Run(fmt.Sprintf("%s/%s/%d", kind, kerns[kind], dir), func(b *testing.B) {
				for b.Loop() {
					k.Run(p, a, w, dy, c, nil)
				}
			})
		}
	}
}
