package cpu

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// The fused gating kernels of fuse-moe-gating. moe_route does in one
// launch what the unfused plan spreads over moe_gate, E moe_dispatch, E
// moe_gate_take, moe_stats and moe_aux: a parallel pass over the tokens
// (top-k, gate weights, aux-loss partial sums), then a sequential pass over
// the T·k choices in priority order that counts, drops beyond the
// capacity and writes the permutation (O(T·k), a few microseconds).
//
// Slot layout: expert e owns slots offsets[e] ≤ s < offsets[e+1], its tokens
// in priority order; perm[s] is the token, w[s] its gate weight; slots past
// the last kept choice hold perm = −1 and w = 0. token_slots[t] lists the
// slots of token t's experts in ascending expert order (−1: dropped), the
// order in which the unfused plan adds the experts' contributions.

// moeRoute is moe_route.
type moeRoute struct {
	pool     *pool.Pool
	r        *moeRouter
	capacity int
	h, tau   []float32
	perm     []int32
	off      []int32
	w        []float32
	ts       []int32
	load     []float32
	dropped  []float32
	aux      []float32
	wsel     []float32 // [T·K] weights in rank order
	slotOf   []int32   // [T·K] slot of each choice in rank order, −1 dropped
	n, fill  []int32
	P, z     []float64
}

func newMoERoute(b *binder) (kernel, error) {
	r, err := newMoERouter(b, b.inType(0))
	if err != nil {
		return nil, err
	}
	k := &moeRoute{pool: b.pool, r: r, capacity: b.attrs().Int("capacity", 0), h: b.in(0), tau: b.in(1),
		perm: b.x.i32[b.k.Outs[0]], off: b.x.i32[b.k.Outs[1]], w: b.out(2), ts: b.x.i32[b.k.Outs[3]],
		load: b.out(4), dropped: b.out(5), aux: b.out(6),
		wsel: make([]float32, r.T*r.K), slotOf: make([]int32, r.T*r.K), n: make([]int32, r.E), fill: make([]int32, r.E),
		P: make([]float64, r.blocks*r.E), z: make([]float64, r.blocks)}
	return k, nil
}

func (k *moeRoute) run() error {
	if !(k.tau[0] > 0) {
		return fmt.Errorf("temperature %g is not positive", k.tau[0])
	}
	r := k.r
	k.pool.RunTask(r.c.tasks, k)
	r.counts(k.n)
	var s, dropped int32
	for e, n := range k.n {
		k.off[e] = s
		kept := min(n, int32(k.capacity))
		s += kept
		dropped += n - kept
		k.load[e] = float32(n)
	}
	k.off[r.E] = s
	k.dropped[0] = float32(dropped)
	for i := range k.slotOf {
		k.slotOf[i] = -1
	}
	r.assign(k.capacity, k.fill, func(t, j int, e int32, pos int32) {
		slot := k.off[e] + pos
		k.perm[slot] = int32(t)
		k.w[slot] = k.wsel[t*r.K+j]
		k.slotOf[t*r.K+j] = slot
	})
	for i := s; i < int32(len(k.perm)); i++ {
		k.perm[i], k.w[i] = -1, 0
	}
	for t := 0; t < r.T; t++ {
		sel, slots, out := r.sel[t*r.K:(t+1)*r.K], k.slotOf[t*r.K:(t+1)*r.K], k.ts[t*r.K:(t+1)*r.K]
		for j, e := range sel {
			out[ascRank(sel, e)] = slots[j]
		}
	}
	k.aux[0] = 0
	if r.lb != 0 || r.zl != 0 {
		k.aux[0] = float32(r.auxLoss(k.P, k.z, k.n))
	}
	return nil
}

// ascRank is the position of e among sel sorted ascending.
func ascRank(sel []int32, e int32) int {
	n := 0
	for _, x := range sel {
		if x < e {
			n++
		}
	}
	return n
}

func (k *moeRoute) Run(w, task int) {
	r := k.r
	lo, hi := r.c.bounds(task)
	s := r.scratch[w]
	a, wt, p := s[:r.E], s[r.E:2*r.E], s[2*r.E:3*r.E]
	tau := float64(k.tau[0])
	aux := r.lb != 0 || r.zl != 0
	for blk := lo; blk < hi; blk++ {
		t0, t1 := r.tokens(blk)
		P := k.P[blk*r.E : (blk+1)*r.E]
		clear(P)
		k.z[blk] = 0
		for t := t0; t < t1; t++ {
			r.pick(k.h, t, a)
			r.weights(t, a, tau, wt, p)
			for j := 0; j < r.K; j++ {
				k.wsel[t*r.K+j] = float32(wt[j])
			}
			if aux {
				r.auxToken(k.h, t, a, tau, P, &k.z[blk], nil, 0, p, nil)
			}
		}
	}
}

// moeRouteGrad is moe_route_grad: dh from the slot weights' gradient and,
// with aux, the auxiliary loss's.
type moeRouteGrad struct {
	pool     *pool.Pool
	r        *moeRouter
	sel      moeSelectTask
	dw       []float32
	h, tau   []float32
	ts       []int32
	daux     []float32
	out      []float32
	n        []int32
	f        []float64
	dauxV    float64
	selected bool // the selection is already done (aux needed the counts first)
}

func newMoERouteGrad(b *binder) (kernel, error) {
	r, err := newMoERouter(b, b.inType(1))
	if err != nil {
		return nil, err
	}
	k := &moeRouteGrad{pool: b.pool, r: r, sel: moeSelectTask{r: r, h: b.in(1)}, dw: b.in(0), h: b.in(1), tau: b.in(2),
		ts: b.inI32(4), out: b.out(0), n: make([]int32, r.E), f: make([]float64, r.E)}
	if len(b.k.Ins) == 6 {
		k.daux = b.in(5)
	}
	return k, nil
}

func (k *moeRouteGrad) run() error {
	if !(k.tau[0] > 0) {
		return fmt.Errorf("temperature %g is not positive", k.tau[0])
	}
	r := k.r
	k.selected = false
	if k.daux != nil && r.lb != 0 {
		r.selectAll(k.pool, &k.sel)
		r.counts(k.n)
		for e, n := range k.n {
			k.f[e] = float64(n) / float64(r.T*r.K)
		}
		k.selected = true
	}
	if k.daux != nil {
		k.dauxV = float64(k.daux[0])
	}
	k.pool.RunTask(r.c.tasks, k)
	return nil
}

func (k *moeRouteGrad) Run(w, task int) {
	r := k.r
	lo, hi := r.c.bounds(task)
	s := r.scratch[w]
	a, wt, p, dg := s[:r.E], s[r.E:2*r.E], s[2*r.E:3*r.E], s[3*r.E:4*r.E]
	tau := float64(k.tau[0])
	for blk := lo; blk < hi; blk++ {
		t0, t1 := r.tokens(blk)
		for t := t0; t < t1; t++ {
			if k.selected {
				make32(a, k.h[t*r.E:(t+1)*r.E], r.act)
			} else {
				r.pick(k.h, t, a)
			}
			out := k.out[t*r.E : (t+1)*r.E]
			clear(out)
			sel, slots := r.sel[t*r.K:(t+1)*r.K], k.ts[t*r.K:(t+1)*r.K]
			for j, e := range sel {
				dg[j] = 0
				if s := slots[ascRank(sel, e)]; s >= 0 {
					dg[j] = float64(k.dw[s])
				}
			}
			r.gateGrad(k.h, t, a, tau, dg, wt, p, out)
			if k.daux != nil {
				r.auxToken(k.h, t, a, tau, nil, nil, k.f, k.dauxV, p, out)
			}
		}
	}
}
