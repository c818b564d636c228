package cpu

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// Matrix products go to the gemm package, which parallelises over the pool
// itself (and keeps small products on one worker). None of them may write
// over their inputs: the GEMM streams A and B while C fills.

func init() {
	register("matmul", false, func(b *binder) (kernel, error) { return newMatmul(b, false, false) })
	register("matmul_bias_act", false, func(b *binder) (kernel, error) { return newMatmul(b, true, false) })
	register("matmul_act_grad", false, func(b *binder) (kernel, error) { return newMatmul(b, true, true) })
}

var acts = map[string]gemm.Act{"none": gemm.None, "relu": gemm.ReLU, "gelu": gemm.GELU, "tanh": gemm.Tanh, "sigmoid": gemm.Sigmoid}

// matmul is c = epilogue(op(a)·op(b)) for row-major 2-D buffers.
type matmul struct {
	pool           *pool.Pool
	transA, transB bool
	m, n, k        int
	a, b, c        []float32
	lda, ldb       int
	ep             gemm.Epilogue
}

func newMatmul(b *binder, fused, grad bool) (kernel, error) {
	at, bt := b.inType(0), b.inType(1)
	ta, tb := b.attrs().Bool("transpose_a", false), b.attrs().Bool("transpose_b", false)
	m, k, n, err := ir.MatmulDims(at, bt, ta, tb)
	if err != nil {
		return nil, err
	}
	km := &matmul{pool: b.pool, transA: ta, transB: tb, m: m, n: n, k: k,
		a: b.in(0), b: b.in(1), c: b.out(0), lda: max(1, at.Shape[1]), ldb: max(1, bt.Shape[1])}
	if !fused {
		return km, nil
	}
	name := b.attrs().Str("act", "none")
	act, ok := acts[name]
	if !ok {
		return nil, fmt.Errorf("unknown activation %q", name)
	}
	km.ep.Act = act
	if len(b.k.Ins) == 3 {
		if grad {
			km.ep.ActGradOf = b.in(2)
		} else {
			km.ep.Bias = b.in(2)
		}
	}
	if grad && km.ep.ActGradOf == nil {
		return nil, fmt.Errorf("matmul_act_grad needs the pre-activation as its third input")
	}
	return km, nil
}

func (k *matmul) run() error {
	gemm.SgemmEpilogue(k.pool, k.transA, k.transB, k.m, k.n, k.k, k.a, k.lda, k.b, k.ldb, k.c, max(1, k.n), k.ep)
	return nil
}
