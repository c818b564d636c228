package cpu

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// The grouped expert kernels of fuse-moe-gating. Tokens arrive permuted by
// expert (moe_route's slots), so expert e's tokens are one contiguous block
// of rows and each of its products is a plain GEMM over exactly its n_e rows:
// no padding, no per-expert gather, with the bias and activation (or its
// gradient) fused into the GEMM epilogues. With at least two experts per
// worker the experts run side by side, each GEMM on one worker with no
// synchronisation inside it (row blocks of up to moeChunkRows, then in the
// backward the weight gradients, largest first); otherwise the GEMMs run
// one after another, each split over the pool. On 2 cores side by side is
// 10-25% faster at the bench shape (BenchmarkMoEExperts).
//
// The arithmetic per row is that of the unfused plan: the same GEMM
// blocking along k, the same epilogue order (bias, then activation); bias
// gradients are summed four rows at a time (colBlockSum). Slots past the
// last routed one are zeroed so that no stale arena data is left in an
// output.

func init() {
	register("moe_ffn", false, newMoEFFN)
	register("moe_ffn_grad", false, newMoEFFNGrad)
	register("moe_combine", false, newMoECombine)
	register("moe_combine_grad", false, newMoECombineGrad)
}

// moeExperts is what both FFN kernels know about the experts.
type moeExperts struct {
	pool     *pool.Pool
	E, d, H  int
	act      gemm.Act
	pre      bool // the pre-activation is kept (the activation's gradient needs it)
	off      []int32
	w1, w2   [][]float32
	b1, b2   [][]float32 // forward only
	rowsTask moeRows     // parallel row loops, re-aimed per launch
	colsum   moeColSum
	tasks    []moeTask // a side-by-side launch's work, largest first
}

// moeTask is one unit of a side-by-side launch: rows [r0, r1) of expert e,
// or (moe_ffn_grad) one of expert e's weight gradients.
type moeTask struct {
	e, r0, r1 int
	kind      int
}

const (
	taskRows = iota // the row-wise GEMMs of a block of rows
	taskDW2         // dW2 and db2 of an expert
	taskDW1         // dW1 and db1 of an expert
)

// moeChunkRows bounds the rows of one row task: large enough that packing
// the expert's weights again per task costs little, small enough that the
// tasks balance over the workers.
var moeChunkRows = 768

// rowTasks cuts every expert's rows into tasks of at most moeChunkRows.
func (x *moeExperts) rowTasks() {
	x.tasks = x.tasks[:0]
	for e := 0; e < x.E; e++ {
		s0, n := x.span(e)
		if n == 0 {
			continue
		}
		parts := (n + moeChunkRows - 1) / moeChunkRows
		per := (n + parts - 1) / parts
		for r := 0; r < n; r += per {
			x.tasks = append(x.tasks, moeTask{e: e, r0: s0 + r, r1: s0 + min(r+per, n), kind: taskRows})
		}
	}
	x.sortTasks()
}

// weightTasks lists every expert's two weight gradients.
func (x *moeExperts) weightTasks() {
	x.tasks = x.tasks[:0]
	for e := 0; e < x.E; e++ {
		s0, n := x.span(e)
		x.tasks = append(x.tasks, moeTask{e: e, r0: s0, r1: s0 + n, kind: taskDW2}, moeTask{e: e, r0: s0, r1: s0 + n, kind: taskDW1})
	}
	x.sortTasks()
}

// sortTasks puts the largest tasks first (the pool hands them out in order,
// so the workers finish together), ties in list order, without allocating.
func (x *moeExperts) sortTasks() {
	t := x.tasks
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j].r1-t[j].r0 > t[j-1].r1-t[j-1].r0; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}

// expertParallel decides how a launch spreads the experts over the pool:
// side by side, each expert's GEMMs on one worker (no synchronisation
// inside a GEMM, largest experts first so the workers finish together), or
// one after another, each GEMM split over every worker. Side by side needs
// enough experts to balance: at least two per worker. The result does not
// depend on the choice (a GEMM's arithmetic does not depend on its worker
// count).
func (x *moeExperts) expertParallel() bool {
	if moeForceParallel != 0 {
		return moeForceParallel > 0
	}
	w := x.pool.Workers()
	return w > 1 && x.E >= 2*w
}

// moeForceParallel overrides expertParallel in benchmarks (1: side by side,
// −1: one after another, 0: decide).
var moeForceParallel = 0

func newMoEExperts(b *binder) (*moeExperts, error) {
	a := b.attrs()
	x := &moeExperts{pool: b.pool, E: a.Int("experts", 0)}
	name := a.Str("act", "relu")
	act, ok := acts[name]
	if !ok || act == gemm.None {
		return nil, fmt.Errorf("unknown expert activation %q", name)
	}
	x.act, x.pre = act, ir.MoEFFNKeepsPre(name)
	x.rowsTask = moeRows{pool: b.pool}
	x.colsum = moeColSum{pool: b.pool, workers: b.workers()}
	return x, nil
}

// rows runs fn over [0, n) rows of width perRow on the pool.
func (x *moeExperts) rows(n, perRow int, fn func(lo, hi int)) {
	x.rowsTask.c = split(n, (grainCheap+perRow-1)/max(perRow, 1), x.pool.Workers(), 1)
	x.rowsTask.fn = fn
	x.rowsTask.run()
}

// span is expert e's slot range.
func (x *moeExperts) span(e int) (s0, n int) { return int(x.off[e]), int(x.off[e+1] - x.off[e]) }

// moeFFN is moe_ffn.
type moeFFN struct {
	*moeExperts
	x           []float32
	perm        []int32
	xp, z, h, y []float32
	gather      func(lo, hi int)
	actRows     func(lo, hi int)
	s0          int // current expert's first slot, for actRows
}

func newMoEFFN(b *binder) (kernel, error) {
	ex, err := newMoEExperts(b)
	if err != nil {
		return nil, err
	}
	E := ex.E
	ex.off = b.inI32(2)
	for e := 0; e < E; e++ {
		ex.w1 = append(ex.w1, b.in(3+e))
		ex.b1 = append(ex.b1, b.in(3+E+e))
		ex.w2 = append(ex.w2, b.in(3+2*E+e))
		ex.b2 = append(ex.b2, b.in(3+3*E+e))
	}
	ex.d, ex.H = b.inType(3).Shape[0], b.inType(3).Shape[1]
	ex.tasks = make([]moeTask, 0, len(b.inI32(1))/moeChunkRows+2*E+1)
	k := &moeFFN{moeExperts: ex, x: b.in(0), perm: b.inI32(1), xp: b.out(0)}
	n := len(b.k.Outs)
	k.h, k.y = b.out(n-2), b.out(n-1)
	if ex.pre {
		k.z = b.out(1)
	}
	d, H := ex.d, ex.H
	k.gather = func(lo, hi int) {
		for s := lo; s < hi; s++ {
			row := k.xp[s*d : (s+1)*d]
			if t := k.perm[s]; t >= 0 && int(t+1)*d <= len(k.x) {
				copy(row, k.x[int(t)*d:int(t+1)*d])
			} else {
				clear(row)
			}
		}
	}
	k.actRows = func(lo, hi int) {
		src, dst := k.z[(k.s0+lo)*H:(k.s0+hi)*H], k.h[(k.s0+lo)*H:(k.s0+hi)*H]
		copy(dst, src)
		gemm.ApplyAct(k.act, dst)
	}
	return k, nil
}

func (k *moeFFN) run() error {
	S, d, H := len(k.perm), k.d, k.H
	used := int(k.off[k.E])
	if err := k.checkOffsets(S); err != nil {
		return err
	}
	k.rows(S, d, k.gather)
	if k.expertParallel() {
		k.rowTasks()
		k.pool.RunTask(len(k.tasks), k)
	} else {
		for e := 0; e < k.E; e++ {
			s0, n := k.span(e)
			k.forward(e, s0, s0+n, k.pool)
		}
	}
	clear(k.y[used*d:])
	clear(k.h[used*H:])
	if k.z != nil {
		clear(k.z[used*H:])
	}
	return nil
}

// Run is one task of a side-by-side launch.
func (k *moeFFN) Run(_, t int) {
	task := k.tasks[t]
	k.forward(task.e, task.r0, task.r1, nil)
}

// forward runs expert e's two GEMMs over slots [s0, s1) on p (nil: this
// goroutine).
func (k *moeFFN) forward(e, s0, s1 int, p *pool.Pool) {
	d, H := k.d, k.H
	n := s1 - s0
	if n == 0 {
		return
	}
	xp, h, y := k.xp[s0*d:(s0+n)*d], k.h[s0*H:(s0+n)*H], k.y[s0*d:(s0+n)*d]
	if k.pre {
		z := k.z[s0*H : (s0+n)*H]
		gemm.SgemmEpilogue(p, false, false, n, H, d, xp, d, k.w1[e], H, z, H, gemm.Epilogue{Bias: k.b1[e]})
		if p == nil {
			copy(h, z)
			gemm.ApplyAct(k.act, h)
		} else {
			k.s0 = s0
			k.rows(n, H, k.actRows)
		}
	} else {
		gemm.SgemmEpilogue(p, false, false, n, H, d, xp, d, k.w1[e], H, h, H, gemm.Epilogue{Bias: k.b1[e], Act: k.act})
	}
	gemm.SgemmEpilogue(p, false, false, n, d, H, h, H, k.w2[e], d, y, d, gemm.Epilogue{Bias: k.b2[e]})
}

// checkOffsets rejects offsets that do not describe S slots in order.
func (x *moeExperts) checkOffsets(S int) error {
	if x.off[0] != 0 || int(x.off[x.E]) > S {
		return fmt.Errorf("offsets %d..%d do not fit %d slots", x.off[0], x.off[x.E], S)
	}
	for e := 0; e < x.E; e++ {
		if x.off[e+1] < x.off[e] {
			return fmt.Errorf("expert %d: offsets out of order", e)
		}
	}
	return nil
}

// moeFFNGrad is moe_ffn_grad.
type moeFFNGrad struct {
	*moeExperts
	dy, xp, pre, h []float32
	dxp, dz        []float32
	dw1, db1       [][]float32
	dw2, db2       [][]float32
}

func newMoEFFNGrad(b *binder) (kernel, error) {
	ex, err := newMoEExperts(b)
	if err != nil {
		return nil, err
	}
	E := ex.E
	k := &moeFFNGrad{moeExperts: ex, dy: b.in(0), xp: b.in(1)}
	n := 2
	if ex.pre {
		k.pre = b.in(n)
		n++
	}
	k.h = b.in(n)
	if !ex.pre {
		k.pre = k.h // relu'(z) = relu'(relu(z))
	}
	ex.off = b.inI32(n + 1)
	for e := 0; e < E; e++ {
		ex.w1 = append(ex.w1, b.in(n+2+e))
		ex.w2 = append(ex.w2, b.in(n+2+E+e))
	}
	ex.d, ex.H = b.inType(n + 2).Shape[0], b.inType(n + 2).Shape[1]
	ex.tasks = make([]moeTask, 0, b.inType(0).Shape[0]/moeChunkRows+2*E+1)
	o := 0
	if b.attrs().Bool("dx", false) {
		k.dxp = b.out(0)
		o++
	}
	k.dz = b.out(o)
	for e := 0; e < E; e++ {
		k.dw1 = append(k.dw1, b.out(o+1+e))
		k.db1 = append(k.db1, b.out(o+1+E+e))
		k.dw2 = append(k.dw2, b.out(o+1+2*E+e))
		k.db2 = append(k.db2, b.out(o+1+3*E+e))
	}
	return k, nil
}

func (k *moeFFNGrad) run() error {
	d, H := k.d, k.H
	S := len(k.dy) / d
	used := int(k.off[k.E])
	if err := k.checkOffsets(S); err != nil {
		return err
	}
	if k.expertParallel() {
		k.rowTasks()
		k.pool.RunTask(len(k.tasks), k)
		k.weightTasks()
		k.pool.RunTask(len(k.tasks), k)
	} else {
		for e := 0; e < k.E; e++ {
			s0, n := k.span(e)
			k.rowGrads(e, s0, s0+n, k.pool)
			k.weightGrads(e, taskDW2, k.pool)
			k.weightGrads(e, taskDW1, k.pool)
		}
	}
	clear(k.dz[used*H:])
	if k.dxp != nil {
		clear(k.dxp[used*d:])
	}
	return nil
}

// Run is one task of a side-by-side launch: row gradients first (dz
// and dxp), then, once every dz is there, the weight gradients.
func (k *moeFFNGrad) Run(_, t int) {
	task := k.tasks[t]
	if task.kind == taskRows {
		k.rowGrads(task.e, task.r0, task.r1, nil)
		return
	}
	k.weightGrads(task.e, task.kind, nil)
}

// rowGrads computes dz and dxp of expert e's slots [s0, s1) on p (nil:
// this goroutine): dz = (dy·W2ᵀ) ⊙ act'(pre), dxp = dz·W1ᵀ.
func (k *moeFFNGrad) rowGrads(e, s0, s1 int, p *pool.Pool) {
	d, H := k.d, k.H
	n := s1 - s0
	if n == 0 {
		return
	}
	dy, pre, dz := k.dy[s0*d:s1*d], k.pre[s0*H:s1*H], k.dz[s0*H:s1*H]
	gemm.SgemmEpilogue(p, false, true, n, H, d, dy, d, k.w2[e], d, dz, H, gemm.Epilogue{Act: k.act, ActGradOf: pre})
	if k.dxp != nil {
		gemm.Sgemm(p, false, true, n, d, H, 1, dz, H, k.w1[e], H, 0, k.dxp[s0*d:s1*d], d)
	}
}

// weightGrads computes dW2 = hᵀ·dy and db2 = Σ dy (taskDW2) or dW1 =
// xpᵀ·dz and db1 = Σ dz (taskDW1) of expert e on p (nil: this goroutine).
func (k *moeFFNGrad) weightGrads(e, kind int, p *pool.Pool) {
	d, H := k.d, k.H
	s0, n := k.span(e)
	if kind == taskDW2 {
		if n == 0 {
			clear(k.dw2[e])
			clear(k.db2[e])
			return
		}
		dy := k.dy[s0*d : (s0+n)*d]
		gemm.Sgemm(p, true, false, H, d, n, 1, k.h[s0*H:(s0+n)*H], H, dy, d, 0, k.dw2[e], d)
		k.colSum(p, dy, n, d, k.db2[e])
		return
	}
	if n == 0 {
		clear(k.dw1[e])
		clear(k.db1[e])
		return
	}
	dz := k.dz[s0*H : (s0+n)*H]
	gemm.Sgemm(p, true, false, d, H, n, 1, k.xp[s0*d:(s0+n)*d], d, dz, H, 0, k.dw1[e], H)
	k.colSum(p, dz, n, H, k.db1[e])
}

// colSum sums the rows of x on p, or on this goroutine when p is nil (the
// same sums either way).
func (x *moeExperts) colSum(p *pool.Pool, m []float32, rows, cols int, y []float32) {
	if p == nil {
		colSumSeq(m, rows, cols, y)
		return
	}
	x.colsum.run(m, rows, cols, y)
}

// moeColSum sums the rows of a [rows, cols] matrix into cols values over
// column blocks on the pool (see colBlockSum).
type moeColSum struct {
	pool       *pool.Pool
	workers    int
	x, y       []float32
	rows, cols int
	c          chunks
}

func (k *moeColSum) run(x []float32, rows, cols int, y []float32) {
	k.x, k.y, k.rows, k.cols = x, y, rows, cols
	blocks := (cols + colBlock - 1) / colBlock
	k.c = split(blocks, max(1, grainCheap/max(rows*colBlock, 1)), k.workers, 1)
	k.pool.RunTask(k.c.tasks, k)
}

func (k *moeColSum) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	for blk := lo; blk < hi; blk++ {
		colBlockSum(k.x, k.rows, k.cols, k.y, blk)
	}
}

// colSumSeq is moeColSum on the calling goroutine (the same sums).
func colSumSeq(x []float32, rows, cols int, y []float32) {
	for blk := 0; blk < (cols+colBlock-1)/colBlock; blk++ {
		colBlockSum(x, rows, cols, y, blk)
	}
}

// colBlockSum sums column block blk of x into y: four rows at a time in
// float32 (their sum rounds once), those partial sums in float64, in row
// order. It is the bias gradient of the fused expert kernels; a memory-bound
// loop, so the four-row step matters more than the last bit of agreement
// with reduce_sum's row-by-row float64 sum (they differ by a few ulps).
func colBlockSum(x []float32, rows, cols int, y []float32, blk int) {
	j0 := blk * colBlock
	w := min(colBlock, cols-j0)
	var acc [colBlock]float64
	a := acc[:w]
	r := 0
	for ; r+4 <= rows; r += 4 {
		r0 := x[r*cols+j0 : r*cols+j0+w]
		r1 := x[(r+1)*cols+j0 : (r+1)*cols+j0+w]
		r2 := x[(r+2)*cols+j0 : (r+2)*cols+j0+w]
		r3 := x[(r+3)*cols+j0 : (r+3)*cols+j0+w]
		for j := range a {
			a[j] += float64((r0[j] + r1[j]) + (r2[j] + r3[j]))
		}
	}
	for ; r < rows; r++ {
		row := x[r*cols+j0 : r*cols+j0+w]
		for j, v := range row {
			a[j] += float64(v)
		}
	}
	for j, v := range a {
		y[j0+j] = float32(v)
	}
}

// moeCombine is moe_combine: each token's expert outputs, weighted and
// added in ascending expert order.
func newMoECombine(b *binder) (kernel, error) {
	y, ts, out := b.in(0), b.inI32(1), b.out(0)
	var w []float32
	if len(b.k.Ins) == 3 {
		w = b.in(2)
	}
	d, K := b.inType(0).Shape[1], b.inType(1).Shape[1]
	return newMoERows(b, b.outType(0).Shape[0], d*K, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			dst := out[t*d : (t+1)*d]
			clear(dst)
			for _, s := range ts[t*K : (t+1)*K] {
				if s < 0 || int(s+1)*d > len(y) {
					continue
				}
				src := y[int(s)*d : int(s+1)*d]
				if w == nil {
					for j, v := range src {
						dst[j] += v
					}
					continue
				}
				ws := w[s]
				for j, v := range src {
					dst[j] += float32(v * ws) // rounded like moe_scale_rows, never fused
				}
			}
		}
	}), nil
}

// moeCombineGrad is moe_combine_grad: per slot, the weighted incoming
// gradient of its token and the gradient of its weight.
func newMoECombineGrad(b *binder) (kernel, error) {
	dy, y, w, perm := b.in(0), b.in(1), b.in(2), b.inI32(3)
	dys, dw := b.out(0), b.out(1)
	d := b.inType(1).Shape[1]
	return newMoERows(b, len(perm), 2*d, func(lo, hi int) {
		for s := lo; s < hi; s++ {
			dst := dys[s*d : (s+1)*d]
			t := perm[s]
			if t < 0 || int(t+1)*d > len(dy) {
				clear(dst)
				dw[s] = 0
				continue
			}
			src := dy[int(t)*d : int(t+1)*d]
			ws := w[s]
			for j, v := range src {
				dst[j] = v * ws
			}
			dw[s] = dot64(src, y[s*d:(s+1)*d])
		}
	}), nil
}
