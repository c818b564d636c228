package cpu

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Loss kernels over logits[B, C] and labels[B]. A label below zero marks a
// padding row, which contributes nothing (and gets a zero gradient); a label
// at or above C is an error reported by Run.
//
// Rows are processed in fixed blocks whose partial sums are added in block
// order, so the loss does not depend on the number of workers.

func init() {
	for _, op := range []struct {
		name       string
		loss, grad bool
	}{{"softmax_xent", true, false}, {"softmax_xent_grad", false, true}, {"softmax_xent_fused", true, true}} {
		// The gradient may overwrite the logits in place: a row's logits
		// are all read before any of its gradient is written.
		register(op.name, op.grad, func(b *binder) (kernel, error) { return newXent(b, op.loss, op.grad), nil })
	}
	register("count_correct", false, newCountCorrect)
}

// rowBlocks fixes the row blocking of a [B, C] loss kernel: about 4K logits
// per block, independent of the worker count.
func rowBlocks(rows, cols int) (perBlock, blocks int) {
	perBlock = max(1, (4<<10)/max(cols, 1))
	return perBlock, (rows + perBlock - 1) / perBlock
}

// labelCheck counts valid rows and rejects labels outside [−∞, C).
func labelCheck(labels []int32, classes int) (valid int, err error) {
	for r, y := range labels {
		if y >= int32(classes) {
			return 0, fmt.Errorf("label %d in row %d is out of range for %d classes", y, r, classes)
		}
		if y >= 0 {
			valid++
		}
	}
	return valid, nil
}

type xent struct {
	pool          *pool.Pool
	logits        []float32
	labels        []int32
	dloss         []float32 // scalar; nil without a gradient
	loss          []float32 // scalar output; nil when not wanted
	grad          []float32 // [B, C] output; nil when not wanted
	rows, classes int
	smooth, zloss float64
	perBlock      int
	partial       []float64 // loss sum per block
	c             chunks    // over blocks

	gscale float64 // dloss / valid rows, set by run before the launch
}

func newXent(b *binder, wantLoss, wantGrad bool) *xent {
	t := b.inType(0)
	k := &xent{pool: b.pool, logits: b.in(0), labels: b.inI32(1), rows: t.Shape[0], classes: t.Shape[1],
		smooth: b.attrs().Float("label_smoothing", 0), zloss: b.attrs().Float("z_loss", 0)}
	out := 0
	if wantLoss {
		k.loss = b.out(out)
		out++
	}
	if wantGrad {
		k.dloss = b.in(2)
		k.grad = b.out(out)
	}
	var blocks int
	k.perBlock, blocks = rowBlocks(k.rows, k.classes)
	k.partial = make([]float64, blocks)
	perBlock := k.perBlock * k.classes
	k.c = split(blocks, (grainExpensive+perBlock-1)/max(perBlock, 1), b.workers(), 1)
	return k
}

func (k *xent) run() error {
	valid, err := labelCheck(k.labels, k.classes)
	if err != nil {
		return err
	}
	if valid == 0 {
		if k.loss != nil {
			k.loss[0] = 0
		}
		clear(k.grad)
		return nil
	}
	if k.grad != nil {
		k.gscale = float64(k.dloss[0]) / float64(valid)
	}
	k.pool.RunTask(k.c.tasks, k)
	if k.loss != nil {
		var total float64
		for _, p := range k.partial {
			total += p
		}
		k.loss[0] = float32(total / float64(valid))
	}
	return nil
}

// Run handles a range of row blocks.
func (k *xent) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	for blk := lo; blk < hi; blk++ {
		r1 := min((blk+1)*k.perBlock, k.rows)
		var sum float64
		for r := blk * k.perBlock; r < r1; r++ {
			sum += k.row(r)
		}
		k.partial[blk] = sum
	}
}

// row computes one row's loss and, when wanted, its gradient:
//
//	lse  = max + log Σ_j exp(l_j − max)
//	loss = lse − ((1−s)·l_y + (s/C)·Σ_j l_j) + z·lse²
//	g_j  = dloss/valid · (p_j·(1 + 2z·lse) − s/C − (1−s)·[j=y]),  p_j = exp(l_j − lse)
func (k *xent) row(r int) float64 {
	C := k.classes
	l := k.logits[r*C : (r+1)*C]
	var g []float32
	if k.grad != nil {
		g = k.grad[r*C : (r+1)*C]
	}
	y := int(k.labels[r])
	if y < 0 {
		clear(g)
		return 0
	}
	// Pass 1: everything that reads the logits by value, before g (which may
	// be l itself) is written.
	mx := l[0]
	var sumL float64
	for _, v := range l {
		if v > mx {
			mx = v
		}
		sumL += float64(v)
	}
	ly := float64(l[y])
	m := float64(mx)
	// Pass 2: the exponentials, kept in g for pass 3.
	var se float64
	if g == nil {
		for _, v := range l {
			se += math.Exp(float64(v) - m)
		}
	} else {
		g = g[:len(l)]
		for j, v := range l {
			e := math.Exp(float64(v) - m)
			se += e
			g[j] = float32(e)
		}
	}
	lse := m + math.Log(se)
	s := k.smooth
	loss := lse - ((1-s)*ly + s/float64(C)*sumL) + k.zloss*lse*lse
	if g != nil {
		// Pass 3: g_j = a·e_j − b, then the label term.
		a := k.gscale * (1 + 2*k.zloss*lse) / se
		off := k.gscale * s / float64(C)
		ey := float64(g[y])
		for j, e := range g {
			g[j] = float32(a*float64(e) - off)
		}
		g[y] = float32(a*ey - off - k.gscale*(1-s))
	}
	return loss
}

// countCorrect counts valid rows whose first maximal logit is the label.
type countCorrect struct {
	pool          *pool.Pool
	logits        []float32
	labels        []int32
	out           []float32
	rows, classes int
	perBlock      int
	partial       []int
	c             chunks
}

func newCountCorrect(b *binder) (kernel, error) {
	t := b.inType(0)
	k := &countCorrect{pool: b.pool, logits: b.in(0), labels: b.inI32(1), out: b.out(0), rows: t.Shape[0], classes: t.Shape[1]}
	var blocks int
	k.perBlock, blocks = rowBlocks(k.rows, k.classes)
	k.partial = make([]int, blocks)
	perBlock := k.perBlock * k.classes
	k.c = split(blocks, (grainCheap+perBlock-1)/max(perBlock, 1), b.workers(), 1)
	return k, nil
}

func (k *countCorrect) run() error {
	if _, err := labelCheck(k.labels, k.classes); err != nil {
		return err
	}
	k.pool.RunTask(k.c.tasks, k)
	n := 0
	for _, p := range k.partial {
		n += p
	}
	k.out[0] = float32(n)
	return nil
}

func (k *countCorrect) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	C := k.classes
	for blk := lo; blk < hi; blk++ {
		n := 0
		for r := blk * k.perBlock; r < min((blk+1)*k.perBlock, k.rows); r++ {
			y := k.labels[r]
			if y < 0 || C == 0 {
				continue
			}
			l := k.logits[r*C : (r+1)*C]
			best, arg := l[0], 0
			for j, v := range l[1:] {
				if v > best {
					best, arg = v, j+1
				}
			}
			if arg == int(y) {
				n++
			}
		}
		k.partial[blk] = n
	}
}
