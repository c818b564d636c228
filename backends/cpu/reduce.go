package cpu

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

func init() {
	register("reduce_sum", false, newReduceSum)
}

// colBlock is the number of adjacent output columns one unit of reduce_sum
// work accumulates at once, in a float64 array on the stack.
const colBlock = 64

// reduceSum sums x viewed as [outer, d, inner] over d into y[outer, inner],
// accumulating in float64. The work is cut into units that each own a
// disjoint set of outputs, so the result does not depend on the worker count.
//
// inner == 1 (summing the last axis): a unit is one output row, a
// contiguous dot-like sum. inner > 1 (e.g. a bias gradient, axis 0): a unit
// is up to colBlock columns of one outer slice, streamed row by row.
type reduceSum struct {
	pool            *pool.Pool
	y, x            []float32
	outer, d, inner int
	blocks          int // column blocks per outer slice
	c               chunks
}

func newReduceSum(b *binder) (kernel, error) {
	t := b.inType(0)
	if t.DType != ir.F32 {
		return nil, fmt.Errorf("reduce_sum of %s: the cpu backend sums f32 only", t)
	}
	axis := b.attrs().Int("axis", 0)
	k := &reduceSum{pool: b.pool, y: b.out(0), x: b.in(0), outer: 1, d: t.Shape[axis], inner: 1}
	for _, n := range t.Shape[:axis] {
		k.outer *= n
	}
	for _, n := range t.Shape[axis+1:] {
		k.inner *= n
	}
	k.blocks = (k.inner + colBlock - 1) / colBlock
	units, perUnit := k.outer*k.blocks, k.d*min(k.inner, colBlock)
	k.c = split(units, (grainCheap+perUnit-1)/max(perUnit, 1), b.workers(), 1)
	return k, nil
}

func (k *reduceSum) run() error { k.pool.RunTask(k.c.tasks, k); return nil }

func (k *reduceSum) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	for u := lo; u < hi; u++ {
		o, blk := u/k.blocks, u%k.blocks
		if k.inner == 1 {
			k.y[o] = sum64(k.x[o*k.d : (o+1)*k.d])
			continue
		}
		j0 := blk * colBlock
		w := min(colBlock, k.inner-j0)
		var acc [colBlock]float64
		a := acc[:w]
		base := o*k.d*k.inner + j0
		for r := 0; r < k.d; r++ {
			row := k.x[base+r*k.inner : base+r*k.inner+w]
			for j, v := range row {
				a[j] += float64(v)
			}
		}
		y := k.y[o*k.inner+j0 : o*k.inner+j0+w]
		for j, v := range a {
			y[j] = float32(v)
		}
	}
}

// sum64 sums in float64 with four independent accumulators (the adds
// pipeline instead of waiting on one another).
func sum64(x []float32) float32 { return float32(sumF64(x)) }

// sumF64 is sum64 before the rounding to float32, for partial sums that
// are added up further.
func sumF64(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}
