package cpu

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// Routing kernels of mixture-of-experts layers: the unfused moe_gate,
// moe_dispatch, moe_stats, moe_aux (and gradients) and the fused moe_route
// and moe_route_grad. They share one routing rule (moeRouter), so the fused
// and unfused plans select the same experts, drop the same tokens and
// compute the same gate weights bit for bit:
//
//   - a token's experts are the k largest act(h) in float32, ties to the
//     lower index (τ > 0 does not change the order, so it is not applied);
//   - expert e takes its tokens in priority order (choice rank, then token
//     index) up to its capacity;
//   - weights are computed in float64 from the float32 scores.
//
// Sums over tokens (aux loss, counts) go by fixed blocks of moeBlock tokens
// added in block order, so no result depends on the worker count.

func init() {
	register("moe_gate", false, func(b *binder) (kernel, error) { return newMoEGate(b, false) })
	register("moe_gate_grad", false, func(b *binder) (kernel, error) { return newMoEGate(b, true) })
	register("moe_dispatch", false, newMoEDispatch)
	register("moe_stats", false, newMoEStats)
	register("moe_aux", false, func(b *binder) (kernel, error) { return newMoEAux(b, false) })
	register("moe_aux_grad", false, func(b *binder) (kernel, error) { return newMoEAux(b, true) })
	register("moe_route", false, newMoERoute)
	register("moe_route_grad", false, newMoERouteGrad)
}

// moeBlock is the number of tokens per unit of routing work.
const moeBlock = 128

const (
	gateTopKSoftmax = iota // softmax over the kept scores
	gateSoftmaxTopK        // softmax over all, keep the top k (renormalize: divide by their sum)
	gateDense              // every expert
)

// moeRouter is the routing rule of one layer and per-worker scratch.
type moeRouter struct {
	T, E, K int
	act     gemm.Act
	kind    int
	renorm  bool
	lb, zl  float64
	sel     []int32 // [T·K] each token's experts in rank order
	blocks  int
	c       chunks // over blocks
	scratch [][]float64
}

func newMoERouter(b *binder, h ir.Type) (*moeRouter, error) {
	a := b.attrs()
	r := &moeRouter{T: h.Shape[0], E: h.Shape[1], K: a.Int("k", 1),
		renorm: a.Bool("renormalize", false), lb: a.Float("load_balance", 0), zl: a.Float("z_loss", 0)}
	name := a.Str("act", "none")
	act, ok := acts[name]
	if !ok {
		return nil, fmt.Errorf("unknown router activation %q", name)
	}
	r.act = act
	switch g := a.Str("gate", "topk_softmax"); g {
	case "topk_softmax":
		r.kind = gateTopKSoftmax
	case "softmax_topk":
		r.kind = gateSoftmaxTopK
	case "dense":
		r.kind = gateDense
	default:
		return nil, fmt.Errorf("unknown gate %q", g)
	}
	if r.kind == gateSoftmaxTopK && r.renorm {
		r.kind = gateTopKSoftmax // the same function
	}
	r.sel = make([]int32, r.T*r.K)
	r.blocks = (r.T + moeBlock - 1) / moeBlock
	r.c = split(r.blocks, (grainExpensive+moeBlock*r.E-1)/(moeBlock*r.E), b.workers(), 1)
	r.scratch = make([][]float64, b.workers())
	for w := range r.scratch {
		r.scratch[w] = make([]float64, 4*r.E)
	}
	return r, nil
}

func (r *moeRouter) tokens(blk int) (lo, hi int) { return blk * moeBlock, min((blk+1)*moeBlock, r.T) }

// pick sets token t's selection from its logits; a receives act(h_t).
func (r *moeRouter) pick(h []float32, t int, a []float64) {
	row := h[t*r.E : (t+1)*r.E]
	av := make32(a, row, r.act)
	sel := r.sel[t*r.K : (t+1)*r.K]
	for j := range sel {
		best := -1
		for e := 0; e < r.E; e++ {
			if best >= 0 && !(av[e] > av[best]) {
				continue
			}
			taken := false
			for _, s := range sel[:j] {
				if int(s) == e {
					taken = true
					break
				}
			}
			if !taken {
				best = e
			}
		}
		sel[j] = int32(best)
	}
}

// make32 writes act(row) rounded to float32 into a and returns it: the
// scores are compared in float32 so every kernel sees the same order.
func make32(a []float64, row []float32, act gemm.Act) []float64 {
	a = a[:len(row)]
	for e, v := range row {
		a[e] = float64(gemm.ActForward(act, v))
	}
	return a
}

// weights writes token t's gate weights of its selected experts (rank
// order) into w, from its scores a; p receives softmax(a/τ) over all
// experts when the gate needs it (softmax_topk).
func (r *moeRouter) weights(t int, a []float64, tau float64, w, p []float64) {
	sel := r.sel[t*r.K : (t+1)*r.K]
	w = w[:len(sel)]
	if r.kind == gateSoftmaxTopK {
		softmaxAll(a, tau, p)
		for j, e := range sel {
			w[j] = p[e]
		}
		return
	}
	mx := math.Inf(-1)
	for _, e := range sel {
		mx = math.Max(mx, a[e]/tau)
	}
	var s float64
	for j, e := range sel {
		w[j] = math.Exp(a[e]/tau - mx)
		s += w[j]
	}
	for j := range w {
		w[j] /= s
	}
}

// softmaxAll writes softmax(a/τ) into p.
func softmaxAll(a []float64, tau float64, p []float64) {
	p = p[:len(a)]
	mx := math.Inf(-1)
	for _, v := range a {
		mx = math.Max(mx, v/tau)
	}
	var s float64
	for e, v := range a {
		p[e] = math.Exp(v/tau - mx)
		s += p[e]
	}
	for e := range p {
		p[e] /= s
	}
}

// gateGrad adds to dh (token t's row) the gradient of the gate weights,
// given dg, the gradient of each selected expert's weight (rank order).
// It recomputes the weights; w and p are scratch.
func (r *moeRouter) gateGrad(h []float32, t int, a []float64, tau float64, dg []float64, w, p []float64, dh []float32) {
	sel := r.sel[t*r.K : (t+1)*r.K]
	r.weights(t, a, tau, w, p)
	row := h[t*r.E : (t+1)*r.E]
	if r.kind == gateSoftmaxTopK {
		// w_e = p_e on the kept set: ds_i = p_i (g_i − Σ_kept g·p).
		var dot float64
		for j := range sel {
			dot += dg[j] * w[j]
		}
		for i := 0; i < r.E; i++ {
			g := 0.0
			for j, e := range sel {
				if int(e) == i {
					g = dg[j]
				}
			}
			dh[i] += float32(p[i] * (g - dot) / tau * float64(gemm.ActGrad(r.act, row[i])))
		}
		return
	}
	// w = softmax over the kept set: ds_e = w_e (g_e − Σ g·w) on it, 0 off it.
	var dot float64
	for j := range sel {
		dot += dg[j] * w[j]
	}
	for j, e := range sel {
		dh[e] += float32(w[j] * (dg[j] - dot) / tau * float64(gemm.ActGrad(r.act, row[e])))
	}
}

// auxToken adds token t's share of the auxiliary loss: its softmax into P
// (for the load-balancing term) and lse(h_t)² into z. With f non-nil it
// instead adds daux·∂aux/∂h_t to dh.
func (r *moeRouter) auxToken(h []float32, t int, a []float64, tau float64, P []float64, z *float64, f []float64, daux float64, p []float64, dh []float32) {
	row := h[t*r.E : (t+1)*r.E]
	if r.lb != 0 {
		softmaxAll(a, tau, p)
		if f == nil {
			for e := range P[:r.E] {
				P[e] += p[e]
			}
		} else {
			var dot float64
			for e := 0; e < r.E; e++ {
				dot += f[e] * p[e]
			}
			c := daux * r.lb * float64(r.E) / float64(r.T) / tau
			for i := 0; i < r.E; i++ {
				dh[i] += float32(c * p[i] * (f[i] - dot) * float64(gemm.ActGrad(r.act, row[i])))
			}
		}
	}
	if r.zl != 0 {
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(s)
		if f == nil {
			*z += lse * lse
		} else {
			c := daux * r.zl * 2 * lse / float64(r.T)
			for i, v := range row {
				dh[i] += float32(c * math.Exp(float64(v)-lse))
			}
		}
	}
}

// auxLoss combines the per-block sums: P (E per block), z (one per block)
// and the pre-capacity counts.
func (r *moeRouter) auxLoss(P, z []float64, counts []int32) float64 {
	var loss float64
	if r.lb != 0 {
		for e := 0; e < r.E; e++ {
			var pe float64
			for blk := 0; blk < r.blocks; blk++ {
				pe += P[blk*r.E+e]
			}
			f := float64(counts[e]) / float64(r.T*r.K)
			loss += r.lb * float64(r.E) * f * pe / float64(r.T)
		}
	}
	if r.zl != 0 {
		var s float64
		for _, v := range z[:r.blocks] {
			s += v
		}
		loss += r.zl * s / float64(r.T)
	}
	return loss
}

// counts sets n[e] to the number of selections of expert e.
func (r *moeRouter) counts(n []int32) {
	clear(n)
	for _, e := range r.sel {
		n[e]++
	}
}

// assign walks the choices in priority order (rank, then token) and calls
// keep(t, j, e, pos) for the pos-th token of expert e while pos < capacity.
func (r *moeRouter) assign(capacity int, fill []int32, keep func(t, j int, e int32, pos int32)) {
	clear(fill)
	for j := 0; j < r.K; j++ {
		for t := 0; t < r.T; t++ {
			e := r.sel[t*r.K+j]
			if int(fill[e]) < capacity {
				keep(t, j, e, fill[e])
				fill[e]++
			}
		}
	}
}

// selectAll picks every token's experts on the pool.
type moeSelectTask struct {
	r *moeRouter
	h []float32
}

func (k *moeSelectTask) Run(w, task int) {
	lo, hi := k.r.c.bounds(task)
	a := k.r.scratch[w][:k.r.E]
	for blk := lo; blk < hi; blk++ {
		t0, t1 := k.r.tokens(blk)
		for t := t0; t < t1; t++ {
			k.r.pick(k.h, t, a)
		}
	}
}

func (r *moeRouter) selectAll(p *pool.Pool, task *moeSelectTask) { p.RunTask(r.c.tasks, task) }

// moeGate is moe_gate (G = weights scattered into [T,E]) or moe_gate_grad.
type moeGate struct {
	pool *pool.Pool
	r    *moeRouter
	grad bool
	h    []float32
	tau  []float32
	dG   []float32 // grad: incoming
	out  []float32
}

func newMoEGate(b *binder, grad bool) (kernel, error) {
	hi := 0
	if grad {
		hi = 1
	}
	r, err := newMoERouter(b, b.inType(hi))
	if err != nil {
		return nil, err
	}
	k := &moeGate{pool: b.pool, r: r, grad: grad, h: b.in(hi), tau: b.in(hi + 1), out: b.out(0)}
	if grad {
		k.dG = b.in(0)
	}
	return k, nil
}

func (k *moeGate) run() error {
	if !(k.tau[0] > 0) {
		return fmt.Errorf("temperature %g is not positive", k.tau[0])
	}
	k.pool.RunTask(k.r.c.tasks, k)
	return nil
}

func (k *moeGate) Run(w, task int) {
	r := k.r
	lo, hi := r.c.bounds(task)
	s := r.scratch[w]
	a, wt, p, dg := s[:r.E], s[r.E:2*r.E], s[2*r.E:3*r.E], s[3*r.E:4*r.E]
	tau := float64(k.tau[0])
	for blk := lo; blk < hi; blk++ {
		t0, t1 := r.tokens(blk)
		for t := t0; t < t1; t++ {
			r.pick(k.h, t, a)
			out := k.out[t*r.E : (t+1)*r.E]
			clear(out)
			sel := r.sel[t*r.K : (t+1)*r.K]
			if !k.grad {
				r.weights(t, a, tau, wt, p)
				for j, e := range sel {
					out[e] = float32(wt[j])
				}
				continue
			}
			for j, e := range sel {
				dg[j] = float64(k.dG[t*r.E+int(e)])
			}
			r.gateGrad(k.h, t, a, tau, dg, wt, p, out)
		}
	}
}

// moeDispatch lists the tokens of one expert.
type moeDispatch struct {
	pool   *pool.Pool
	r      *moeRouter
	sel    moeSelectTask
	expert int32
	out    []int32
	fill   []int32
}

func newMoEDispatch(b *binder) (kernel, error) {
	r, err := newMoERouter(b, b.inType(0))
	if err != nil {
		return nil, err
	}
	return &moeDispatch{pool: b.pool, r: r, sel: moeSelectTask{r: r, h: b.in(0)},
		expert: int32(b.attrs().Int("expert", 0)), out: b.x.i32[b.k.Outs[0]], fill: make([]int32, r.E)}, nil
}

func (k *moeDispatch) run() error {
	k.r.selectAll(k.pool, &k.sel)
	for i := range k.out {
		k.out[i] = -1
	}
	k.r.assign(len(k.out), k.fill, func(t, _ int, e int32, pos int32) {
		if e == k.expert {
			k.out[pos] = int32(t)
		}
	})
	return nil
}

// moeStats counts choices per expert and those dropped by the capacity.
type moeStats struct {
	pool          *pool.Pool
	r             *moeRouter
	sel           moeSelectTask
	capacity      int
	load, dropped []float32
	n, fill       []int32
}

func newMoEStats(b *binder) (kernel, error) {
	r, err := newMoERouter(b, b.inType(0))
	if err != nil {
		return nil, err
	}
	return &moeStats{pool: b.pool, r: r, sel: moeSelectTask{r: r, h: b.in(0)}, capacity: b.attrs().Int("capacity", 0),
		load: b.out(0), dropped: b.out(1), n: make([]int32, r.E), fill: make([]int32, r.E)}, nil
}

func (k *moeStats) run() error {
	k.r.selectAll(k.pool, &k.sel)
	k.r.counts(k.n)
	var dropped int32
	for e, n := range k.n {
		k.load[e] = float32(n)
		dropped += n - min(n, int32(k.capacity))
	}
	k.dropped[0] = float32(dropped)
	return nil
}

// moeAux is the auxiliary loss (or its gradient) over all tokens.
type moeAux struct {
	pool      *pool.Pool
	r         *moeRouter
	grad      bool
	sel       moeSelectTask
	h, tau    []float32
	daux      []float32
	out       []float32
	n         []int32
	f         []float64
	P, z      []float64 // per block
	dauxValue float64
}

func newMoEAux(b *binder, grad bool) (kernel, error) {
	hi := 0
	if grad {
		hi = 1
	}
	r, err := newMoERouter(b, b.inType(hi))
	if err != nil {
		return nil, err
	}
	k := &moeAux{pool: b.pool, r: r, grad: grad, sel: moeSelectTask{r: r, h: b.in(hi)}, h: b.in(hi), tau: b.in(hi + 1),
		out: b.out(0), n: make([]int32, r.E), f: make([]float64, r.E),
		P: make([]float64, r.blocks*r.E), z: make([]float64, r.blocks)}
	if grad {
		k.daux = b.in(0)
	}
	return k, nil
}

func (k *moeAux) run() error {
	if !(k.tau[0] > 0) {
		return fmt.Errorf("temperature %g is not positive", k.tau[0])
	}
	r := k.r
	r.selectAll(k.pool, &k.sel)
	r.counts(k.n)
	for e, n := range k.n {
		k.f[e] = float64(n) / float64(r.T*r.K)
	}
	if k.grad {
		k.dauxValue = float64(k.daux[0])
		clear(k.out)
	}
	k.pool.RunTask(r.c.tasks, k)
	if !k.grad {
		k.out[0] = float32(r.auxLoss(k.P, k.z, k.n))
	}
	return nil
}

func (k *moeAux) Run(w, task int) {
	r := k.r
	lo, hi := r.c.bounds(task)
	s := r.scratch[w]
	a, p := s[:r.E], s[r.E:2*r.E]
	tau := float64(k.tau[0])
	for blk := lo; blk < hi; blk++ {
		t0, t1 := r.tokens(blk)
		P := k.P[blk*r.E : (blk+1)*r.E]
		clear(P)
		k.z[blk] = 0
		for t := t0; t < t1; t++ {
			make32(a, k.h[t*r.E:(t+1)*r.E], r.act)
			if k.grad {
				r.auxToken(k.h, t, a, tau, nil, nil, k.f, k.dauxValue, p, k.out[t*r.E:(t+1)*r.E])
			} else {
				r.auxToken(k.h, t, a, tau, P, &k.z[blk], nil, 0, p, nil)
			}
		}
	}
}
