package sparse

import (
	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Dense is dense-with-mask: W ⊙ M into a scratch matrix, then the dense
// GEMM (forward, input), or the dense GEMM then ⊙ M (weight). It is what a
// plan without fuse-sparse-masks runs, in one kernel, and the fallback of
// the sparse kernels while a mask is too dense for them to pay.
type Dense struct {
	s       Shape
	dir     Dir
	mask    []float32 // the mask it was built with (the arena's buffer)
	wm      []float32 // scratch W ⊙ M
	density float64
	mul     rangeTask
	mulFn   func(w, lo, hi int)
	w, c    []float32 // operands of the current call
}

// NewDense returns a dense-with-mask kernel.
func NewDense(s Shape, dir Dir) *Dense {
	d := &Dense{s: s, dir: dir}
	d.mulFn = d.mulChunk
	return d
}

func (d *Dense) Build(mask []float32) {
	d.mask = mask
	n := 0
	for _, v := range mask {
		if v != 0 {
			n++
		}
	}
	d.density = float64(n) / float64(max(1, len(mask)))
}

func (d *Dense) Density() float64 { return d.density }

func (d *Dense) mulChunk(_, lo, hi int) {
	m := d.mask[lo:hi]
	if d.dir == Weight {
		c := d.c[lo:hi]
		for i, v := range m {
			c[i] *= v
		}
		return
	}
	w, out := d.w[lo:hi], d.wm[lo:hi]
	for i, v := range m {
		out[i] = w[i] * v
	}
}

func (d *Dense) Run(p *pool.Pool, a, w, dy, c []float32, ep *Epilogue) {
	s := d.s
	n := s.Rows * s.Cols
	d.w, d.c = w, c
	if d.dir == Weight {
		gemm.Sgemm(p, true, false, s.Rows, s.Cols, s.Batch, 1, a, max(1, s.Rows), dy, max(1, s.Cols), 0, c, max(1, s.Cols))
		d.mul.run(p, n, 32<<10, d.mulFn)
		return
	}
	if len(d.wm) < n {
		d.wm = make([]float32, n)
	}
	d.mul.run(p, n, 32<<10, d.mulFn)
	var gep gemm.Epilogue
	if ep != nil {
		gep = gemm.Epilogue{Bias: ep.Bias, Act: ep.Act, ActGradOf: ep.Pre}
	}
	if d.dir == Forward {
		gemm.SgemmEpilogue(p, false, false, s.Batch, s.Cols, s.Rows, a, max(1, s.Rows), d.wm, max(1, s.Cols), c, max(1, s.Cols), gep)
	} else {
		gemm.SgemmEpilogue(p, false, true, s.Batch, s.Rows, s.Cols, a, max(1, s.Cols), d.wm, max(1, s.Cols), c, max(1, s.Rows), gep)
	}
}
