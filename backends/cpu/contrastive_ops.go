package cpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Kernels of the unfused contrastive ops (ir/optable_contrastive.go). They
// are the plain, row-parallel versions the fused kernel is checked against;
// results do not depend on the worker count (each row is computed by one
// worker, and sums over rows go by fixed blocks).

func init() {
	register("l2_normalize", false, newL2Normalize)
	register("l2_normalize_grad", false, newL2NormalizeGrad)
	register("row_scale", false, newRowScale)
	register("contrastive_mask", false, newContrastiveMask)
	register("soft_xent", false, func(b *binder) (kernel, error) { return newSoftXent(b, false) })
	register("soft_xent_grad", false, func(b *binder) (kernel, error) { return newSoftXent(b, true) })
	register("gather", false, newGather)
	register("scatter_add", false, newScatterAdd)
}

// rowKernel runs fn over chunks of rows on the pool.
type rowKernel struct {
	pool *pool.Pool
	c    chunks
	task pool.Task
}

func newRowKernel(b *binder, rows, perRow, grain int, fn func(lo, hi int)) *rowKernel {
	k := &rowKernel{pool: b.pool, c: split(rows, (grain+perRow-1)/max(perRow, 1), b.workers(), 1)}
	k.task = pool.Func(func(_, t int) {
		lo, hi := k.c.bounds(t)
		fn(lo, hi)
	})
	return k
}

func (k *rowKernel) run() error { k.pool.RunTask(k.c.tasks, k.task); return nil }

// normEps is the clamp of ‖x‖, as in F.normalize.
const normEps = 1e-12

func rowNorm(x []float32) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return math.Sqrt(ss)
}

func newL2Normalize(b *binder) (kernel, error) {
	x, y := b.in(0), b.out(0)
	rows, d := b.inType(0).Shape[0], b.inType(0).Shape[1]
	return newRowKernel(b, rows, d, grainCheap, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			normalizeRow(y[r*d:(r+1)*d], x[r*d:(r+1)*d])
		}
	}), nil
}

// normalizeRow writes x/max(‖x‖, eps) into y and returns ‖x‖.
func normalizeRow(y, x []float32) float64 {
	n := rowNorm(x)
	inv := float32(1 / math.Max(n, normEps))
	for j, v := range x {
		y[j] = v * inv
	}
	return n
}

func newL2NormalizeGrad(b *binder) (kernel, error) {
	dy, x, dx := b.in(0), b.in(1), b.out(0)
	rows, d := b.inType(1).Shape[0], b.inType(1).Shape[1]
	return newRowKernel(b, rows, d, grainCheap, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			normalizeGradRow(dx[r*d:(r+1)*d], dy[r*d:(r+1)*d], x[r*d:(r+1)*d], rowNorm(x[r*d:(r+1)*d]))
		}
	}), nil
}

// normalizeGradRow: dx = (dy − z(z·dy))/‖x‖ with z = x/‖x‖ (dy/eps below
// the clamp, where the map is linear). dx may be dy.
func normalizeGradRow(dx, dy, x []float32, n float64) {
	if n <= normEps {
		for j, g := range dy {
			dx[j] = float32(float64(g) / normEps)
		}
		return
	}
	var dot float64
	for j, v := range x {
		dot += float64(v) * float64(dy[j])
	}
	c := float32(dot / (n * n * n))
	inv := float32(1 / n)
	for j, v := range x {
		dx[j] = dy[j]*inv - v*c
	}
}

func newRowScale(b *binder) (kernel, error) {
	x, s, y := b.in(0), b.in(1), b.out(0)
	rows, cols := b.inType(0).Shape[0], b.inType(0).Shape[1]
	scalar := b.inType(1).Rank() == 0
	return newRowKernel(b, rows, cols, grainCheap, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			f := s[0]
			if !scalar {
				f = s[r]
			}
			xr, yr := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			for j, v := range xr {
				yr[j] = v * f
			}
		}
	}), nil
}

// positiveOf is Positive of ir/interp: the other view, or column i for dual.
func positiveOf(dual bool, i, rows int) int {
	if dual {
		return i
	}
	return (i + rows/2) % rows
}

type contrastiveMask struct {
	*rowKernel
	labels []int32
}

func newContrastiveMask(b *binder) (kernel, error) {
	a := b.attrs()
	obj := a.Str("objective", "")
	rows, cols := b.inType(0).Shape[0], b.inType(0).Shape[1]
	s, m, p := b.in(0), b.out(0), b.out(1)
	var labels []int32
	var g []float32
	next := 1
	if obj == "supcon" {
		labels = b.inI32(next)
		next++
	}
	if a.Bool("guided", false) {
		g = b.in(next)
	}
	hardK, dual := a.Int("hard_k", 0), obj == "dual"
	scratch := make([][]float32, b.workers())
	for i := range scratch {
		scratch[i] = make([]float32, 0, cols)
	}
	k := &contrastiveMask{labels: labels}
	k.rowKernel = newRowKernel(b, rows, cols, grainCheap, nil)
	k.rowKernel.task = pool.Func(func(w, t int) {
		lo, hi := k.c.bounds(t)
		for i := lo; i < hi; i++ {
			mi, pi := m[i*cols:(i+1)*cols], p[i*cols:(i+1)*cols]
			clear(mi)
			clear(pi)
			if obj == "supcon" {
				n := 0
				for j := range cols {
					if j != i && labels[j] == labels[i] {
						n++
					}
				}
				for j := range cols {
					if j == i {
						continue
					}
					mi[j] = 1
					if labels[j] == labels[i] {
						pi[j] = 1 / float32(n)
					}
				}
				continue
			}
			pos := positiveOf(dual, i, rows)
			pi[pos] = 1
			if obj != "decoupled" {
				mi[pos] = 1
			}
			kept := scratch[w][:0]
			for j := range cols {
				if j == pos || (!dual && j == i) || (g != nil && g[i*cols+j] > g[i*cols+pos]) {
					continue
				}
				mi[j] = 1
				kept = append(kept, s[i*cols+j])
			}
			if hardK > 0 && len(kept) > hardK {
				slices.Sort(kept)
				thr := kept[len(kept)-hardK]
				for j := range cols {
					if j != pos && mi[j] == 1 && s[i*cols+j] < thr {
						mi[j] = 0
					}
				}
			}
			scratch[w] = kept
		}
	})
	return k, nil
}

func (k *contrastiveMask) run() error {
	for _, y := range k.labels {
		if y < 0 {
			return fmt.Errorf("supcon label %d is negative", y)
		}
	}
	return k.rowKernel.run()
}

// softXent is soft_xent (the loss) or soft_xent_grad (its gradient).
type softXent struct {
	pool       *pool.Pool
	l, m, p    []float32
	dloss      []float32
	out        []float32
	rows, cols int
	perBlock   int
	partial    []float64 // per row block: loss sum
	valid      []int     // per row block: rows with a positive
	c          chunks
	grad       bool
	gscale     float64
}

func newSoftXent(b *binder, grad bool) (kernel, error) {
	t := b.inType(0)
	k := &softXent{pool: b.pool, l: b.in(0), m: b.in(1), p: b.in(2), out: b.out(0),
		rows: t.Shape[0], cols: t.Shape[1], grad: grad}
	if grad {
		k.dloss = b.in(3)
	}
	var blocks int
	k.perBlock, blocks = rowBlocks(k.rows, k.cols)
	k.partial, k.valid = make([]float64, blocks), make([]int, blocks)
	per := k.perBlock * k.cols
	k.c = split(blocks, (grainExpensive+per-1)/max(per, 1), b.workers(), 1)
	return k, nil
}

func (k *softXent) run() error {
	valid := 0
	for i := range k.rows {
		if k.counts(i) {
			valid++
		}
	}
	if valid == 0 {
		clear(k.out)
		return nil
	}
	if k.grad {
		k.gscale = float64(k.dloss[0]) / float64(valid)
	}
	k.pool.RunTask(k.c.tasks, k)
	if !k.grad {
		var total float64
		for _, s := range k.partial {
			total += s
		}
		k.out[0] = float32(total / float64(valid))
	}
	return nil
}

func (k *softXent) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	C := k.cols
	for blk := lo; blk < hi; blk++ {
		var total float64
		for i := blk * k.perBlock; i < min((blk+1)*k.perBlock, k.rows); i++ {
			l, m, p := k.l[i*C:(i+1)*C], k.m[i*C:(i+1)*C], k.p[i*C:(i+1)*C]
			var g []float32
			if k.grad {
				g = k.out[i*C : (i+1)*C]
			}
			if !k.counts(i) {
				clear(g)
				continue
			}
			mx := float32(math.Inf(-1))
			for j, v := range l {
				if m[j] != 0 && v > mx {
					mx = v
				}
			}
			var se, pos float64
			for j, v := range l {
				if m[j] != 0 {
					se += float64(m[j]) * math.Exp(float64(v-mx))
				}
				pos += float64(p[j]) * float64(v)
			}
			lse := float64(mx) + math.Log(se)
			total += lse - pos
			if g != nil {
				for j, v := range l {
					var sm float64
					if m[j] != 0 {
						sm = float64(m[j]) * math.Exp(float64(v)-lse)
					}
					g[j] = float32(k.gscale * (sm - float64(p[j])))
				}
			}
		}
		k.partial[blk] = total
	}
}

// counts: a row has a positive and a non-empty denominator.
func (k *softXent) counts(i int) bool {
	return sum64(k.p[i*k.cols:(i+1)*k.cols]) > 0 && sum64(k.m[i*k.cols:(i+1)*k.cols]) > 0
}

func newGather(b *binder) (kernel, error) {
	table, idx, out := b.in(0), b.inI32(1), b.out(0)
	return kernelFunc(func() error {
		for i, j := range idx {
			out[i] = 0
			if j >= 0 && int(j) < len(table) {
				out[i] = table[j]
			}
		}
		return nil
	}), nil
}

func newScatterAdd(b *binder) (kernel, error) {
	x, idx, out := b.in(0), b.inI32(1), b.out(0)
	return kernelFunc(func() error {
		clear(out)
		for i, j := range idx {
			if j >= 0 && int(j) < len(out) {
				out[j] += x[i]
			}
		}
		return nil
	}), nil
}

// kernelFunc is a kernel that is one function (a small serial loop).
type kernelFunc func() error

func (f kernelFunc) run() error { return f() }
