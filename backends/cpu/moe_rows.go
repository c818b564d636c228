package cpu

import (
	"math"

	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// Row kernels of the unfused mixture-of-experts graph: gathers and
// scatters of token rows by an index list (−1 pads), per-row weights, and
// the anneal schedule. Every output element is written by one worker, so
// results do not depend on the worker count.

func init() {
	register("moe_gather", false, newMoEGather)
	register("moe_scatter", false, newMoEScatter)
	register("moe_gate_take", false, newMoEGateTake)
	register("moe_gate_put", false, newMoEGatePut)
	register("moe_scale_rows", false, newMoEScaleRows)
	register("moe_row_dot", false, newMoERowDot)
	register("anneal", false, newAnneal)
}

// moeRows runs fn over chunks of [0, n) rows.
type moeRows struct {
	pool *pool.Pool
	c    chunks
	fn   func(lo, hi int)
}

func newMoERows(b *binder, rows, perRow int, fn func(lo, hi int)) *moeRows {
	return &moeRows{pool: b.pool, c: split(rows, (grainCheap+perRow-1)/max(perRow, 1), b.workers(), 1), fn: fn}
}

func (k *moeRows) run() error { k.pool.RunTask(k.c.tasks, k); return nil }

func (k *moeRows) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	k.fn(lo, hi)
}

func newMoEGather(b *binder) (kernel, error) {
	x, idx, out := b.in(0), b.inI32(1), b.out(0)
	d := b.inType(0).Shape[1]
	return newMoERows(b, len(idx), d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := out[i*d : (i+1)*d]
			if t := idx[i]; t >= 0 && int(t)*d < len(x) {
				copy(row, x[int(t)*d:(int(t)+1)*d])
			} else {
				clear(row)
			}
		}
	}), nil
}

// moe_scatter may see a token twice, so it splits the work by columns:
// each worker adds its columns of every row, in row order.
func newMoEScatter(b *binder) (kernel, error) {
	y, idx, out := b.in(0), b.inI32(1), b.out(0)
	d, rows := b.inType(0).Shape[1], b.outType(0).Shape[0]
	k := &moeRows{pool: b.pool, c: split(d, max(1, grainCheap/max(len(idx)+rows, 1)), b.workers(), lineFloats)}
	k.fn = func(lo, hi int) {
		for t := 0; t < rows; t++ {
			clear(out[t*d+lo : t*d+hi])
		}
		for i, t := range idx {
			if t < 0 || int(t) >= rows {
				continue
			}
			dst, src := out[int(t)*d+lo:int(t)*d+hi], y[i*d+lo:i*d+hi]
			for j, v := range src {
				dst[j] += v
			}
		}
	}
	return k, nil
}

func newMoEGateTake(b *binder) (kernel, error) {
	g, idx, out := b.in(0), b.inI32(1), b.out(0)
	e, E := b.attrs().Int("expert", 0), b.inType(0).Shape[1]
	return newMoERows(b, len(idx), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] = 0
			if t := idx[i]; t >= 0 && int(t)*E+e < len(g) {
				out[i] = g[int(t)*E+e]
			}
		}
	}), nil
}

func newMoEGatePut(b *binder) (kernel, error) {
	v, idx, out := b.in(0), b.inI32(1), b.out(0)
	e, E := b.attrs().Int("expert", 0), b.outType(0).Shape[1]
	return &moeSeq{fn: func() {
		clear(out)
		for i, t := range idx {
			if t >= 0 && int(t)*E+e < len(out) {
				out[int(t)*E+e] += v[i]
			}
		}
	}}, nil
}

// moeSeq is a kernel too small to split.
type moeSeq struct{ fn func() }

func (k *moeSeq) run() error { k.fn(); return nil }

func newMoEScaleRows(b *binder) (kernel, error) {
	y, w, out := b.in(0), b.in(1), b.out(0)
	d := b.inType(0).Shape[1]
	return newMoERows(b, len(w), d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := w[i]
			src, dst := y[i*d:(i+1)*d], out[i*d:(i+1)*d]
			for j, v := range src {
				dst[j] = v * s
			}
		}
	}), nil
}

func newMoERowDot(b *binder) (kernel, error) {
	x, y, out := b.in(0), b.in(1), b.out(0)
	d := b.inType(0).Shape[1]
	return newMoERows(b, len(out), d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] = dot64(x[i*d:(i+1)*d], y[i*d:(i+1)*d])
		}
	}), nil
}

// dot64 is Σ a_i·b_i accumulated in float64.
func dot64(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(a); i += 2 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
	}
	if i < len(a) {
		s0 += float64(a[i]) * float64(b[i])
	}
	return float32(s0 + s1)
}

func newAnneal(b *binder) (kernel, error) {
	step, out, attrs := b.inI32(0), b.out(0), b.attrs()
	return &moeSeq{fn: func() { out[0] = float32(anneal(attrs, int(step[0]))) }}, nil
}

// anneal is the anneal op's schedule (ir/interp.Anneal is its reference).
func anneal(a ir.Attrs, step int) float64 {
	start, end, steps := a.Float("start", 1), a.Float("end", 1), a.Int("steps", 0)
	kind := a.Str("kind", "constant")
	if kind == "constant" || steps <= 0 {
		return start
	}
	p := math.Min(math.Max(float64(step)/float64(steps), 0), 1)
	switch kind {
	case "linear":
		return start + (end-start)*p
	case "cosine":
		return end + (start-end)*0.5*(1+math.Cos(math.Pi*p))
	case "exponential":
		return start * math.Pow(end/start, p)
	}
	return start
}
