package cpu

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/backends/cpu/sparse"
)

// Sparse training kernels (ir/optable_sparse.go); the work is in
// backends/cpu/sparse. A masked matmul keeps the compressed form of its
// mask and rebuilds it when the mask's generation changes; while the mask
// is denser than the plan's dense_above (gradual pruning starts dense) it
// runs dense-with-mask instead.

func init() {
	register("mask_update", true, newMaskUpdate)
	register("masked_matmul", false, newMaskedMatmul)
	register("masked_matmul_dw", false, newMaskedMatmul)
}

type maskUpdate struct {
	u       *sparse.MaskUpdate
	w, m    []float32
	gen, st []int32
}

func newMaskUpdate(b *binder) (kernel, error) {
	t := b.inType(0)
	return &maskUpdate{u: sparse.NewMaskUpdate(b.attrs(), t.Shape[0], t.Shape[1]),
		w: b.in(0), m: b.in(1), gen: b.inI32(2), st: b.inI32(3)}, nil
}

func (k *maskUpdate) run() error {
	k.u.Run(k.w, k.m, k.gen, int(k.st[0]))
	return nil
}

type maskedMatmul struct {
	pool       *pool.Pool
	dir        sparse.Dir
	a, w, m    []float32
	dy, c      []float32
	gen        []int32
	ep         *sparse.Epilogue
	main       sparse.Kernel // the plan's kernel
	dense      sparse.Kernel // dense-with-mask fallback (nil without dense_above)
	denseAbove float64
	cur        sparse.Kernel
	built      bool
	builtGen   int32
}

func newMaskedMatmul(b *binder) (kernel, error) {
	at := b.attrs()
	mt := b.inType(2) // the mask has W's shape
	k := &maskedMatmul{pool: b.pool, a: b.in(0), w: b.in(1), m: b.in(2), gen: b.inI32(3), c: b.out(0),
		denseAbove: at.Float("dense_above", 0)}
	s := sparse.Shape{Batch: b.inType(0).Shape[0], Rows: mt.Shape[0], Cols: mt.Shape[1]}
	switch {
	case b.k.Op == "masked_matmul_dw":
		k.dir, k.dy, k.w = sparse.Weight, b.in(1), nil
	case at.Bool("transpose_b", false):
		k.dir = sparse.Input
	default:
		k.dir = sparse.Forward
	}
	if b.k.Op == "masked_matmul" {
		name := at.Str("act", "none")
		act, ok := acts[name]
		if !ok {
			return nil, fmt.Errorf("unknown activation %q", name)
		}
		ep := &sparse.Epilogue{Act: act}
		if len(b.k.Ins) == 5 {
			if b.inType(4).Rank() == 1 {
				ep.Bias = b.in(4)
			} else {
				ep.Pre = b.in(4)
			}
		}
		k.ep = ep
	}
	kern := at.Str("kernel", "dense")
	switch kern {
	case "dense":
		k.main = sparse.NewDense(s, k.dir)
	case "block":
		k.main = sparse.NewBlock(s, k.dir)
	case "nm":
		if n, m := at.Int("n", 0), at.Int("m", 0); m == 4 && n >= 1 && n <= 3 {
			k.main = sparse.NewNM(s, k.dir, n)
			break
		}
		fallthrough // other N:M patterns run on the index-list kernels
	case "csr":
		if k.dir == sparse.Weight {
			k.main = sparse.NewSDDMM(s)
		} else {
			k.main = sparse.NewLists(s, k.dir)
		}
	default:
		return nil, fmt.Errorf("unknown masked kernel %q", kern)
	}
	if kern != "dense" && k.denseAbove > 0 {
		k.dense = sparse.NewDense(s, k.dir)
	}
	return k, nil
}

func (k *maskedMatmul) run() error {
	if !k.built || k.gen[0] != k.builtGen {
		k.main.Build(k.m)
		k.cur = k.main
		if k.dense != nil && k.main.Density() > k.denseAbove {
			k.dense.Build(k.m)
			k.cur = k.dense
		}
		k.built, k.builtGen = true, k.gen[0]
	}
	k.cur.Run(k.pool, k.a, k.w, k.dy, k.c, k.ep)
	return nil
}
