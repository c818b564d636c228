package cpu

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Kernels of the sequence-model and regression-head ops
// (ir/optable_seq.go). Row-parallel; sums over rows (parameter gradients,
// losses) go by column blocks or fixed row blocks, so results do not depend
// on the worker count.

func init() {
	register("token_ids", false, newTokenIDs)
	register("embed", false, newEmbed)
	register("embed_grad", false, newEmbedGrad)
	register("layer_norm", false, func(b *binder) (kernel, error) { return newLayerNorm(b, false) })
	register("layer_norm_grad", false, func(b *binder) (kernel, error) { return newLayerNorm(b, true) })
	register("attention", false, func(b *binder) (kernel, error) { return newAttention(b, false) })
	register("attention_grad", false, func(b *binder) (kernel, error) { return newAttention(b, true) })
	register("slice_cols", false, newSliceCols)
	register("pad_cols", false, newPadCols)
	register("mixture_nll", false, func(b *binder) (kernel, error) { return newMixtureNLL(b, false) })
	register("mixture_nll_grad", false, func(b *binder) (kernel, error) { return newMixtureNLL(b, true) })
}

func newTokenIDs(b *binder) (kernel, error) {
	x, out := b.in(0), b.x.i32[b.k.Outs[0]]
	var mask []int32
	if len(b.k.Ins) == 2 {
		mask = b.inI32(1)
	}
	shift, w := b.attrs().Int("shift", 0), b.inType(0).Shape[1]
	t := w - 1
	return newMoERows(b, b.inType(0).Shape[0], t, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dst := out[r*t : (r+1)*t]
			if mask != nil && mask[r] < 0 {
				for i := range dst {
					dst[i] = -1
				}
				continue
			}
			for i, v := range x[r*w+shift : r*w+shift+t] {
				dst[i] = int32(v)
				if v < 0 {
					dst[i] = -1
				}
			}
		}
	}), nil
}

// embed checks ids against the vocabulary before it writes anything.
type embed struct {
	*moeRows
	ids   []int32
	vocab int
}

func (k *embed) run() error {
	for n, id := range k.ids {
		if int(id) >= k.vocab {
			return fmt.Errorf("token id %d at position %d is out of range for a vocabulary of %d", id, n, k.vocab)
		}
	}
	return k.moeRows.run()
}

func newEmbed(b *binder) (kernel, error) {
	ids, table, pos, out := b.inI32(0), b.in(1), b.in(2), b.out(0)
	d, T := b.inType(1).Shape[1], b.inType(2).Shape[0]
	rows := newMoERows(b, len(ids), d, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			dst, p := out[n*d:(n+1)*d], pos[(n%T)*d:(n%T+1)*d]
			if id := ids[n]; id >= 0 {
				src := table[int(id)*d : int(id+1)*d]
				for j := range dst {
					dst[j] = src[j] + p[j]
				}
			} else {
				copy(dst, p)
			}
		}
	})
	return &embed{moeRows: rows, ids: ids, vocab: b.inType(1).Shape[0]}, nil
}

// embed_grad adds rows into a table; split by columns, so that no two
// workers add into the same element and the order is the row order.
func newEmbedGrad(b *binder) (kernel, error) {
	dy, ids, dtab, dpos := b.in(0), b.inI32(1), b.out(0), b.out(1)
	d, V, T := b.inType(0).Shape[1], b.outType(0).Shape[0], b.outType(1).Shape[0]
	k := &moeRows{pool: b.pool, c: split(d, max(1, grainCheap/max(len(ids), 1)), b.workers(), lineFloats)}
	k.fn = func(lo, hi int) {
		for r := 0; r < V; r++ {
			clear(dtab[r*d+lo : r*d+hi])
		}
		for r := 0; r < T; r++ {
			clear(dpos[r*d+lo : r*d+hi])
		}
		for n, id := range ids {
			src := dy[n*d+lo : n*d+hi]
			p := dpos[(n%T)*d+lo : (n%T)*d+hi]
			for j, v := range src {
				p[j] += v
			}
			if id >= 0 && int(id) < V {
				t := dtab[int(id)*d+lo : int(id)*d+hi]
				for j, v := range src {
					t[j] += v
				}
			}
		}
	}
	return k, nil
}

// layerNorm is layer_norm or, with grad, layer_norm_grad: dx row by row,
// then dγ and dβ by column blocks from the per-row statistics.
type layerNorm struct {
	pool       *pool.Pool
	grad       bool
	x, g, bt   []float32
	dy         []float32
	y, dg, db  []float32
	n, d       int
	eps        float64
	mean, rstd []float64
	rows, cols chunks
	phase      int
}

func newLayerNorm(b *binder, grad bool) (kernel, error) {
	k := &layerNorm{pool: b.pool, grad: grad, eps: b.attrs().Float("eps", 1e-5), y: b.out(0)}
	xi := 0
	if grad {
		k.dy, xi = b.in(0), 1
		k.dg, k.db = b.out(1), b.out(2)
	} else {
		k.bt = b.in(2)
	}
	k.x, k.g = b.in(xi), b.in(xi+1)
	k.n, k.d = b.inType(xi).Shape[0], b.inType(xi).Shape[1]
	k.mean, k.rstd = make([]float64, k.n), make([]float64, k.n)
	k.rows = split(k.n, (grainCheap+k.d-1)/max(k.d, 1), b.workers(), 1)
	k.cols = split((k.d+colBlock-1)/colBlock, 1, b.workers(), 1)
	return k, nil
}

func (k *layerNorm) run() error {
	k.phase = 0
	k.pool.RunTask(k.rows.tasks, k)
	if k.grad {
		k.phase = 1
		k.pool.RunTask(k.cols.tasks, k)
	}
	return nil
}

func (k *layerNorm) Run(_, t int) {
	d := k.d
	if k.phase == 1 {
		lo, hi := k.cols.bounds(t)
		for blk := lo; blk < hi; blk++ {
			j0 := blk * colBlock
			w := min(colBlock, d-j0)
			var ag, ab [colBlock]float64
			for r := 0; r < k.n; r++ {
				x, dy := k.x[r*d+j0:r*d+j0+w], k.dy[r*d+j0:r*d+j0+w]
				m, s := k.mean[r], k.rstd[r]
				for j, v := range dy {
					ag[j] += float64(v) * (float64(x[j]) - m) * s
					ab[j] += float64(v)
				}
			}
			for j := 0; j < w; j++ {
				k.dg[j0+j], k.db[j0+j] = float32(ag[j]), float32(ab[j])
			}
		}
		return
	}
	lo, hi := k.rows.bounds(t)
	for r := lo; r < hi; r++ {
		x := k.x[r*d : (r+1)*d]
		var m float64
		for _, v := range x {
			m += float64(v)
		}
		m /= float64(d)
		var vr float64
		for _, v := range x {
			vr += (float64(v) - m) * (float64(v) - m)
		}
		s := 1 / math.Sqrt(vr/float64(d)+k.eps)
		k.mean[r], k.rstd[r] = m, s
		y := k.y[r*d : (r+1)*d]
		if !k.grad {
			for j, v := range x {
				y[j] = float32((float64(v)-m)*s)*k.g[j] + k.bt[j]
			}
			continue
		}
		dy := k.dy[r*d : (r+1)*d]
		var m1, m2 float64
		for j, v := range x {
			g := float64(dy[j]) * float64(k.g[j])
			m1 += g
			m2 += g * (float64(v) - m) * s
		}
		m1, m2 = m1/float64(d), m2/float64(d)
		for j, v := range x {
			xh := (float64(v) - m) * s
			y[j] = float32(s * (float64(dy[j])*float64(k.g[j]) - m1 - xh*m2))
		}
	}
}

// attention runs one (sequence, head) pair per unit of work; each pair owns
// its rows and head columns of every output. A pair's q, k, v (and do)
// blocks are copied into contiguous per-worker scratch first, so the inner
// loops run over short dense rows.
type attention struct {
	pool            *pool.Pool
	grad            bool
	q, kk, v, do    []float32
	out, dq, dk, dv []float32
	T, D, H, dh     int
	causal          bool
	scale           float32
	c               chunks
	scratch         [][]float32 // per worker: P [T·T], dP [T], q, k, v, do, dq, dk, dv [T·dh]
}

func newAttention(b *binder, grad bool) (kernel, error) {
	qi := 0
	if grad {
		qi = 1
	}
	a := b.attrs()
	k := &attention{pool: b.pool, grad: grad, q: b.in(qi), kk: b.in(qi + 1), v: b.in(qi + 2),
		T: a.Int("seq", 1), H: a.Int("heads", 1), causal: a.Bool("causal", false)}
	n := b.inType(qi).Shape[0]
	k.D = b.inType(qi).Shape[1]
	k.dh = k.D / k.H
	k.scale = float32(1 / math.Sqrt(float64(k.dh)))
	if grad {
		k.do = b.in(0)
		k.dq, k.dk, k.dv = b.out(0), b.out(1), b.out(2)
	} else {
		k.out = b.out(0)
	}
	pairs := n / k.T * k.H
	k.c = split(pairs, max(1, grainExpensive/max(k.T*k.T*k.dh, 1)), b.workers(), 1)
	k.scratch = make([][]float32, b.workers())
	for w := range k.scratch {
		k.scratch[w] = make([]float32, k.T*k.T+k.T+7*k.T*k.dh)
	}
	return k, nil
}

func (k *attention) run() error {
	k.pool.RunTask(k.c.tasks, k)
	return nil
}

// load copies rows b·T.. of head h of m into dst [T·dh]; store the reverse.
func (k *attention) load(dst, m []float32, b, h int) {
	for i := 0; i < k.T; i++ {
		copy(dst[i*k.dh:(i+1)*k.dh], m[(b*k.T+i)*k.D+h*k.dh:])
	}
}

func (k *attention) store(m, src []float32, b, h int) {
	for i := 0; i < k.T; i++ {
		copy(m[(b*k.T+i)*k.D+h*k.dh:(b*k.T+i)*k.D+(h+1)*k.dh], src[i*k.dh:(i+1)*k.dh])
	}
}

func (k *attention) Run(w, task int) {
	lo, hi := k.c.bounds(task)
	T, dh := k.T, k.dh
	sc := k.scratch[w]
	P, dP := sc[:T*T], sc[T*T:T*T+T]
	blk := sc[T*T+T:]
	q, kk, v, do := blk[:T*dh], blk[T*dh:2*T*dh], blk[2*T*dh:3*T*dh], blk[3*T*dh:4*T*dh]
	dq, dk, dv := blk[4*T*dh:5*T*dh], blk[5*T*dh:6*T*dh], blk[6*T*dh:7*T*dh]
	for pair := lo; pair < hi; pair++ {
		b, h := pair/k.H, pair%k.H
		k.load(q, k.q, b, h)
		k.load(kk, k.kk, b, h)
		k.load(v, k.v, b, h)
		for i := 0; i < T; i++ {
			p := P[i*T : (i+1)*T]
			last := T
			if k.causal {
				last = i + 1
			}
			qi := q[i*dh : (i+1)*dh]
			mx := float32(math.Inf(-1))
			for j := 0; j < last; j++ {
				kj := kk[j*dh : (j+1)*dh]
				var s float32
				for c, x := range qi {
					s += x * kj[c]
				}
				p[j] = s * k.scale
				mx = max(mx, p[j])
			}
			var sum float64
			for j := 0; j < last; j++ {
				e := float32(math.Exp(float64(p[j] - mx)))
				p[j] = e
				sum += float64(e)
			}
			inv := float32(1 / sum)
			for j := range p {
				if j < last {
					p[j] *= inv
				} else {
					p[j] = 0
				}
			}
			if k.grad {
				continue
			}
			o := dq[i*dh : (i+1)*dh] // scratch for the output row
			clear(o)
			for j := 0; j < last; j++ {
				pj, vj := p[j], v[j*dh:(j+1)*dh]
				for c := range o {
					o[c] += pj * vj[c]
				}
			}
		}
		if !k.grad {
			k.store(k.out, dq, b, h)
			continue
		}
		k.load(do, k.do, b, h)
		clear(dq)
		clear(dk)
		clear(dv)
		for i := 0; i < T; i++ {
			p, doi := P[i*T:(i+1)*T], do[i*dh:(i+1)*dh]
			var dot float32
			for j := 0; j < T; j++ {
				dP[j] = 0
				if p[j] == 0 {
					continue
				}
				vj := v[j*dh : (j+1)*dh]
				var s float32
				for c, x := range doi {
					s += x * vj[c]
				}
				dP[j] = s
				dot += s * p[j]
			}
			dqi, qi := dq[i*dh:(i+1)*dh], q[i*dh:(i+1)*dh]
			for j := 0; j < T; j++ {
				if p[j] == 0 {
					continue
				}
				ds := p[j] * (dP[j] - dot) * k.scale
				pj := p[j]
				kj, dkj, dvj := kk[j*dh:(j+1)*dh], dk[j*dh:(j+1)*dh], dv[j*dh:(j+1)*dh]
				for c := range dqi {
					dqi[c] += ds * kj[c]
					dkj[c] += ds * qi[c]
					dvj[c] += pj * doi[c]
				}
			}
		}
		k.store(k.dq, dq, b, h)
		k.store(k.dk, dk, b, h)
		k.store(k.dv, dv, b, h)
	}
}

func newSliceCols(b *binder) (kernel, error) {
	x, out := b.in(0), b.out(0)
	s, w, c := b.attrs().Int("start", 0), b.inType(0).Shape[1], b.outType(0).Shape[1]
	return newMoERows(b, b.inType(0).Shape[0], c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(out[r*c:(r+1)*c], x[r*w+s:r*w+s+c])
		}
	}), nil
}

func newPadCols(b *binder) (kernel, error) {
	y, out := b.in(0), b.out(0)
	s, c, w := b.attrs().Int("start", 0), b.inType(0).Shape[1], b.outType(0).Shape[1]
	return newMoERows(b, b.inType(0).Shape[0], w, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := out[r*w : (r+1)*w]
			clear(row)
			copy(row[s:s+c], y[r*c:(r+1)*c])
		}
	}), nil
}

// mixtureNLL is mixture_nll or its gradient, over fixed blocks of rows.
type mixtureNLL struct {
	pool         *pool.Pool
	grad         bool
	g, mu, lv, y []float32
	mask         []int32
	dloss        []float32
	loss         []float32
	dg, dmu, dlv []float32
	B, E         int
	perBlock     int
	partial      []float64 // loss per block, or dlv per block [blocks·E]
	c            chunks
	scale        float64
	scratch      [][]float64
}

func newMixtureNLL(b *binder, grad bool) (kernel, error) {
	gi := 0
	if grad {
		gi = 1
	}
	k := &mixtureNLL{pool: b.pool, grad: grad, g: b.in(gi), mu: b.in(gi + 1), lv: b.in(gi + 2), y: b.in(gi + 3), mask: b.inI32(gi + 4)}
	k.B, k.E = b.inType(gi).Shape[0], b.inType(gi).Shape[1]
	if grad {
		k.dloss = b.in(0)
		k.dg, k.dmu, k.dlv = b.out(0), b.out(1), b.out(2)
	} else {
		k.loss = b.out(0)
	}
	k.perBlock = max(1, (1<<10)/max(k.E, 1))
	blocks := (k.B + k.perBlock - 1) / k.perBlock
	k.partial = make([]float64, blocks*k.E)
	k.c = split(blocks, 1, b.workers(), 1)
	k.scratch = make([][]float64, b.workers())
	for w := range k.scratch {
		k.scratch[w] = make([]float64, k.E)
	}
	return k, nil
}

func (k *mixtureNLL) run() error {
	valid := 0
	for _, m := range k.mask {
		if m >= 0 {
			valid++
		}
	}
	if valid == 0 {
		if k.grad {
			clear(k.dg)
			clear(k.dmu)
			clear(k.dlv)
		} else {
			k.loss[0] = 0
		}
		return nil
	}
	k.scale = 1 / float64(valid)
	if k.grad {
		k.scale *= float64(k.dloss[0])
	}
	k.pool.RunTask(k.c.tasks, k)
	blocks := len(k.partial) / k.E
	if !k.grad {
		var s float64
		for blk := 0; blk < blocks; blk++ {
			s += k.partial[blk*k.E]
		}
		k.loss[0] = float32(s / float64(valid))
		return nil
	}
	for e := 0; e < k.E; e++ {
		var s float64
		for blk := 0; blk < blocks; blk++ {
			s += k.partial[blk*k.E+e]
		}
		k.dlv[e] = float32(s)
	}
	return nil
}

func (k *mixtureNLL) Run(w, task int) {
	lo, hi := k.c.bounds(task)
	E := k.E
	logN := k.scratch[w]
	for blk := lo; blk < hi; blk++ {
		part := k.partial[blk*E : (blk+1)*E]
		clear(part)
		for r := blk * k.perBlock; r < min((blk+1)*k.perBlock, k.B); r++ {
			if k.mask[r] < 0 {
				if k.grad {
					clear(k.dg[r*E : (r+1)*E])
					clear(k.dmu[r*E : (r+1)*E])
				}
				continue
			}
			y := float64(k.y[r])
			mx := math.Inf(-1)
			for e := 0; e < E; e++ {
				d := y - float64(k.mu[r*E+e])
				lv := float64(k.lv[e])
				logN[e] = -0.5*math.Log(2*math.Pi) - 0.5*lv - d*d/(2*math.Exp(lv))
				if g := float64(k.g[r*E+e]); g > 0 {
					mx = math.Max(mx, math.Log(g)+logN[e])
				}
			}
			var s float64
			for e := 0; e < E; e++ {
				if g := float64(k.g[r*E+e]); g > 0 {
					s += math.Exp(math.Log(g) + logN[e] - mx)
				}
			}
			logp := mx + math.Log(s)
			if !k.grad {
				part[0] -= logp
				continue
			}
			for e := 0; e < E; e++ {
				n := math.Exp(logN[e] - logp)
				resp := float64(k.g[r*E+e]) * n
				d := y - float64(k.mu[r*E+e])
				v := math.Exp(float64(k.lv[e]))
				k.dg[r*E+e] = float32(-k.scale * n)
				k.dmu[r*E+e] = float32(-k.scale * resp * d / v)
				part[e] += k.scale * resp * (0.5 - d*d/(2*v))
			}
		}
	}
}

func init() {
	register("sum_all", false, newSumAll)
	register("broadcast_scalar", false, func(b *binder) (kernel, error) {
		s, out := b.in(0), b.out(0)
		return newMoERows(b, len(out), 1, func(lo, hi int) {
			v := s[0]
			for i := range out[lo:hi] {
				out[lo+i] = v
			}
		}), nil
	})
}

// sumAll adds fixed blocks in parallel, then the block sums in order.
type sumAll struct {
	pool    *pool.Pool
	x, out  []float32
	partial []float64
	c       chunks
}

const sumBlock = 1 << 14

func newSumAll(b *binder) (kernel, error) {
	x := b.in(0)
	blocks := (len(x) + sumBlock - 1) / sumBlock
	return &sumAll{pool: b.pool, x: x, out: b.out(0), partial: make([]float64, blocks),
		c: split(blocks, max(1, grainCheap/sumBlock), b.workers(), 1)}, nil
}

func (k *sumAll) run() error {
	k.pool.RunTask(k.c.tasks, k)
	var s float64
	for _, p := range k.partial {
		s += p
	}
	k.out[0] = float32(s)
	return nil
}

func (k *sumAll) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	for blk := lo; blk < hi; blk++ {
		// Kept in float64: rounding each block's sum to float32 left the
		// total up to 3e-5 off where the terms nearly cancel.
		k.partial[blk] = sumF64(k.x[blk*sumBlock : min((blk+1)*sumBlock, len(k.x))])
	}
}
