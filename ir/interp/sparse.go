package interp

import (
	"math"
	"sort"

	"github.com/expc-dev/expc/backends/rng"
	"github.com/expc-dev/expc/ir"
)

// Float64 references of the sparse training ops (ir/optable_sparse.go).
// Mask selection here sorts; the CPU backend selects with quickselect, so
// the two are independent implementations of the same definition.
func init() {
	ops["mask_update"] = maskUpdate
	ops["masked_matmul"] = func(in *ir.Instr, a, o []*Tensor) {
		wm := maskedWeight(a[1], a[2])
		mm := &ir.Instr{Attrs: ir.Attrs{"transpose_b": in.Attrs.Bool("transpose_b", false)}}
		matmul(mm, a[0], wm, o[0])
		if len(a) < 5 {
			return
		}
		act, n := in.Attrs.Str("act", "none"), o[0].Shape[1]
		for i := range o[0].F {
			if len(a[4].Shape) == 1 {
				o[0].F[i] = Act(act, o[0].F[i]+a[4].F[i%n])
			} else {
				o[0].F[i] *= ActGrad(act, a[4].F[i])
			}
		}
	}
	ops["masked_matmul_dw"] = func(in *ir.Instr, a, o []*Tensor) {
		matmul(&ir.Instr{Attrs: ir.Attrs{"transpose_a": true}}, a[0], a[1], o[0])
		for i, m := range a[2].F {
			o[0].F[i] *= m
		}
	}
}

func maskedWeight(w, m *Tensor) *Tensor {
	out := &Tensor{Shape: w.Shape, F: make([]float64, len(w.F))}
	for i := range w.F {
		out.F[i] = w.F[i] * m.F[i]
	}
	return out
}

// maskUpdate: see ir.MaskDensityAt for the density at a step. Units
// (weights, or blocks) are ranked by key, largest first, ties to the lower
// index; the top MaskKeep(units, density) are kept (N per group for nm).
func maskUpdate(in *ir.Instr, a, o []*Tensor) {
	at := in.Attrs
	w, m, gen, step := a[0], a[1], a[2], int(a[3].I[0])
	copy(o[0].F, w.F)
	copy(o[1].F, m.F)
	o[2].I[0] = gen.I[0]
	if d := at.Int("dense_at", 0); d > 0 && step >= d {
		for i := range w.F {
			o[0].F[i] = w.F[i] * m.F[i]
			o[1].F[i] = 1
		}
		o[2].I[0] = genOf(o[1].F)
		return
	}
	first := step == 0 || gen.I[0] == 0
	sched := at.Str("schedule", "static")
	if !first && sched == "static" {
		return
	}
	random := first && at.Str("init", "random") == "random"
	seed := uint64(at.Int("seed", 0))
	key := func(i int) float64 { // per weight
		switch {
		case random:
			return float64(rng.Uniform(seed, uint64(i)))
		case !first && sched == "gradual":
			return math.Abs(w.F[i] * m.F[i])
		}
		return math.Abs(w.F[i])
	}
	rows, cols := w.Shape[0], w.Shape[1]
	density := ir.MaskDensityAt(at, step)
	out := o[1].F
	clear(out)
	switch at.Str("pattern", "unstructured") {
	case "nm":
		n, gm := at.Int("n", 1), at.Int("m", 1)
		for j := 0; j < cols; j++ {
			for g := 0; g < rows; g += gm {
				idx := make([]int, gm)
				for r := range idx {
					idx[r] = (g+r)*cols + j
				}
				for _, i := range topK(idx, n, key) {
					out[i] = 1
				}
			}
		}
	case "block":
		b := at.Ints("block")
		bh, bw := b[0], b[1]
		nbc := cols / bw
		blocks := make([]int, (rows/bh)*nbc)
		for i := range blocks {
			blocks[i] = i
		}
		bkey := func(bi int) float64 {
			if random {
				return float64(rng.Uniform(seed, uint64(bi)))
			}
			var s float64
			r0, c0 := bi/nbc*bh, bi%nbc*bw
			for r := r0; r < r0+bh; r++ {
				for c := c0; c < c0+bw; c++ {
					s += key(r*cols + c)
				}
			}
			return s
		}
		for _, bi := range topK(blocks, ir.MaskKeep(len(blocks), density), bkey) {
			r0, c0 := bi/nbc*bh, bi%nbc*bw
			for r := r0; r < r0+bh; r++ {
				for c := c0; c < c0+bw; c++ {
					out[r*cols+c] = 1
				}
			}
		}
	default:
		all := make([]int, len(out))
		for i := range all {
			all[i] = i
		}
		for _, i := range topK(all, ir.MaskKeep(len(all), density), key) {
			out[i] = 1
		}
	}
	o[2].I[0] = genOf(out)
}

// topK returns the k units with the largest keys (ties: lower unit first).
func topK(units []int, k int, key func(int) float64) []int {
	s := append([]int(nil), units...)
	sort.SliceStable(s, func(x, y int) bool {
		kx, ky := key(s[x]), key(s[y])
		if kx != ky {
			return kx > ky
		}
		return s[x] < s[y]
	})
	return s[:k]
}

func genOf(m []float64) int32 {
	g := ir.NewMaskGen()
	for i, v := range m {
		if v != 0 {
			g = g.Add(i)
		}
	}
	return g.Value()
}
