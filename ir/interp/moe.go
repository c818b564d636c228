package interp

import (
	"math"

	"github.com/expc-dev/expc/ir"
)

// Float64 references of the mixture-of-experts ops (ir/optable_moe.go). The
// fused ops are computed from the same routing helpers as the unfused ones,
// so that a fused plan is checked against the graph it replaces.

func init() {
	ops["moe_gate"] = func(in *ir.Instr, a, o []*Tensor) {
		r := moeRouter(in.Attrs, a[0], a[1].F[0])
		for t := 0; t < r.T; t++ {
			copy(o[0].F[t*r.E:(t+1)*r.E], r.gate(t))
		}
	}
	ops["moe_gate_grad"] = func(in *ir.Instr, a, o []*Tensor) {
		r := moeRouter(in.Attrs, a[1], a[2].F[0])
		for t := 0; t < r.T; t++ {
			r.gateGrad(t, a[0].F[t*r.E:(t+1)*r.E], o[0].F[t*r.E:(t+1)*r.E])
		}
	}
	ops["moe_dispatch"] = func(in *ir.Instr, a, o []*Tensor) {
		r := moeRouter(in.Attrs, a[0], 1)
		toks := r.assign(in.Attrs.Int("capacity", 0))[in.Attrs.Int("expert", 0)]
		for i := range o[0].I {
			o[0].I[i] = -1
			if i < len(toks) {
				o[0].I[i] = int32(toks[i])
			}
		}
	}
	ops["moe_stats"] = func(in *ir.Instr, a, o []*Tensor) {
		r := moeRouter(in.Attrs, a[0], 1)
		kept := r.assign(in.Attrs.Int("capacity", 0))
		total := 0
		for e, n := range r.counts() {
			o[0].F[e] = float64(n)
			total += n - len(kept[e])
		}
		o[1].F[0] = float64(total)
	}
	ops["moe_aux"] = func(in *ir.Instr, a, o []*Tensor) {
		o[0].F[0] = moeRouter(in.Attrs, a[0], a[1].F[0]).aux(0, nil)
	}
	ops["moe_aux_grad"] = func(in *ir.Instr, a, o []*Tensor) {
		moeRouter(in.Attrs, a[1], a[2].F[0]).aux(a[0].F[0], o[0].F)
	}
	ops["moe_gather"] = func(_ *ir.Instr, a, o []*Tensor) {
		d := a[0].Shape[1]
		for i, t := range a[1].I {
			if t >= 0 {
				copy(o[0].F[i*d:(i+1)*d], a[0].F[int(t)*d:(int(t)+1)*d])
			}
		}
	}
	ops["moe_scatter"] = func(_ *ir.Instr, a, o []*Tensor) {
		d := a[0].Shape[1]
		for i, t := range a[1].I {
			if t >= 0 && int(t) < o[0].Shape[0] {
				for j := 0; j < d; j++ {
					o[0].F[int(t)*d+j] += a[0].F[i*d+j]
				}
			}
		}
	}
	ops["moe_gate_take"] = func(in *ir.Instr, a, o []*Tensor) {
		e, E := in.Attrs.Int("expert", 0), a[0].Shape[1]
		for i, t := range a[1].I {
			if t >= 0 {
				o[0].F[i] = a[0].F[int(t)*E+e]
			}
		}
	}
	ops["moe_gate_put"] = func(in *ir.Instr, a, o []*Tensor) {
		e, E := in.Attrs.Int("expert", 0), o[0].Shape[1]
		for i, t := range a[1].I {
			if t >= 0 && int(t) < o[0].Shape[0] {
				o[0].F[int(t)*E+e] += a[0].F[i]
			}
		}
	}
	ops["moe_scale_rows"] = func(_ *ir.Instr, a, o []*Tensor) {
		d := a[0].Shape[1]
		for i, x := range a[0].F {
			o[0].F[i] = x * a[1].F[i/d]
		}
	}
	ops["moe_row_dot"] = func(_ *ir.Instr, a, o []*Tensor) {
		d := a[0].Shape[1]
		for i, x := range a[0].F {
			o[0].F[i/d] += x * a[1].F[i]
		}
	}
	ops["anneal"] = func(in *ir.Instr, a, o []*Tensor) {
		o[0].F[0] = Anneal(in.Attrs, int(a[0].I[0]))
	}

	ops["moe_route"] = func(in *ir.Instr, a, o []*Tensor) {
		r := moeRouter(in.Attrs, a[0], a[1].F[0])
		c := in.Attrs.Int("capacity", 0)
		kept := r.assign(c)
		perm, off, w, ts := o[0].I, o[1].I, o[2].F, o[3].I
		for i := range perm {
			perm[i] = -1
		}
		for i := range ts {
			ts[i] = -1
		}
		slot := map[[2]int]int{} // (token, expert) -> slot
		s := 0
		for e := 0; e < r.E; e++ {
			off[e] = int32(s)
			for _, t := range kept[e] {
				perm[s], w[s] = int32(t), r.gate(t)[e]
				slot[[2]int{t, e}] = s
				s++
			}
		}
		off[r.E] = int32(s)
		for t := 0; t < r.T; t++ {
			for j, e := range sortedInts(r.sel[t]) {
				if s, ok := slot[[2]int{t, e}]; ok {
					ts[t*r.K+j] = int32(s)
				}
			}
		}
		dropped := 0
		for e, n := range r.counts() {
			o[4].F[e] = float64(n)
			dropped += n - len(kept[e])
		}
		o[5].F[0] = float64(dropped)
		o[6].F[0] = r.aux(0, nil)
	}
	ops["moe_route_grad"] = func(in *ir.Instr, a, o []*Tensor) {
		r := moeRouter(in.Attrs, a[1], a[2].F[0])
		dw, ts := a[0].F, a[4].I
		dg := make([]float64, r.E)
		for t := 0; t < r.T; t++ {
			clear(dg)
			for j, e := range sortedInts(r.sel[t]) {
				if s := ts[t*r.K+j]; s >= 0 {
					dg[e] = dw[s]
				}
			}
			r.gateGrad(t, dg, o[0].F[t*r.E:(t+1)*r.E])
		}
		if len(a) == 6 {
			aux := make([]float64, len(o[0].F))
			r.aux(a[5].F[0], aux)
			for i := range aux {
				o[0].F[i] += aux[i]
			}
		}
	}
	ops["moe_ffn"] = func(in *ir.Instr, a, o []*Tensor) {
		E, act := in.Attrs.Int("experts", 0), in.Attrs.Str("act", "relu")
		x, perm, off := a[0], a[1].I, a[2].I
		d := x.Shape[1]
		w1, b1, w2, b2 := a[3:3+E], a[3+E:3+2*E], a[3+2*E:3+3*E], a[3+3*E:3+4*E]
		H := w1[0].Shape[1]
		xp, y := o[0].F, o[len(o)-1].F
		h := o[len(o)-2].F
		var z []float64
		if ir.MoEFFNKeepsPre(act) {
			z = o[1].F
		}
		for s, t := range perm {
			if t >= 0 {
				copy(xp[s*d:(s+1)*d], x.F[int(t)*d:(int(t)+1)*d])
			}
		}
		for e := 0; e < E; e++ {
			for s := int(off[e]); s < int(off[e+1]); s++ {
				for j := 0; j < H; j++ {
					v := b1[e].F[j]
					for p := 0; p < d; p++ {
						v += xp[s*d+p] * w1[e].F[p*H+j]
					}
					if z != nil {
						z[s*H+j] = v
					}
					h[s*H+j] = Act(act, v)
				}
				for j := 0; j < d; j++ {
					v := b2[e].F[j]
					for p := 0; p < H; p++ {
						v += h[s*H+p] * w2[e].F[p*d+j]
					}
					y[s*d+j] = v
				}
			}
		}
	}
	ops["moe_ffn_grad"] = func(in *ir.Instr, a, o []*Tensor) {
		E, act := in.Attrs.Int("experts", 0), in.Attrs.Str("act", "relu")
		dy, xp := a[0].F, a[1].F
		pre := ir.MoEFFNKeepsPre(act)
		n := 2
		var z []float64
		if pre {
			z = a[n].F
			n++
		}
		h, off := a[n].F, a[n+1].I
		w1, w2 := a[n+2:n+2+E], a[n+2+E:n+2+2*E]
		d, H := w1[0].Shape[0], w1[0].Shape[1]
		r := 0
		var dxp []float64
		if in.Attrs.Bool("dx", false) {
			dxp = o[0].F
			r++
		}
		dz := o[r].F
		dw1, db1, dw2, db2 := o[r+1:r+1+E], o[r+1+E:r+1+2*E], o[r+1+2*E:r+1+3*E], o[r+1+3*E:r+1+4*E]
		for e := 0; e < E; e++ {
			for s := int(off[e]); s < int(off[e+1]); s++ {
				for j := 0; j < H; j++ {
					var g float64
					for p := 0; p < d; p++ {
						g += dy[s*d+p] * w2[e].F[j*d+p]
					}
					at := h[s*H+j]
					if pre {
						at = z[s*H+j]
					}
					dz[s*H+j] = g * ActGrad(act, at)
				}
				for j := 0; j < d; j++ {
					db2[e].F[j] += dy[s*d+j]
					for p := 0; p < H; p++ {
						dw2[e].F[p*d+j] += h[s*H+p] * dy[s*d+j]
					}
				}
				for j := 0; j < H; j++ {
					db1[e].F[j] += dz[s*H+j]
					for p := 0; p < d; p++ {
						dw1[e].F[p*H+j] += xp[s*d+p] * dz[s*H+j]
					}
				}
				if dxp != nil {
					for p := 0; p < d; p++ {
						var v float64
						for j := 0; j < H; j++ {
							v += dz[s*H+j] * w1[e].F[p*H+j]
						}
						dxp[s*d+p] = v
					}
				}
			}
		}
	}
	ops["moe_combine"] = func(_ *ir.Instr, a, o []*Tensor) {
		y, ts := a[0], a[1]
		d, k := y.Shape[1], ts.Shape[1]
		for t := 0; t < ts.Shape[0]; t++ {
			for j := 0; j < k; j++ {
				s := int(ts.I[t*k+j])
				if s < 0 {
					continue
				}
				w := 1.0
				if len(a) == 3 {
					w = a[2].F[s]
				}
				for c := 0; c < d; c++ {
					o[0].F[t*d+c] += w * y.F[s*d+c]
				}
			}
		}
	}
	ops["moe_combine_grad"] = func(_ *ir.Instr, a, o []*Tensor) {
		dy, y, w, perm := a[0].F, a[1].F, a[2].F, a[3].I
		d := a[1].Shape[1]
		for s, t := range perm {
			if t < 0 {
				continue
			}
			row := dy[int(t)*d : (int(t)+1)*d]
			for c := 0; c < d; c++ {
				o[0].F[s*d+c] = w[s] * row[c]
				o[1].F[s] += row[c] * y[s*d+c]
			}
		}
	}
}

// router is the routing of one batch of tokens: scores, selection and gate
// parameters, in float64.
type router struct {
	T, E, K   int
	h, a      []float64 // logits and act(logits), [T,E]
	tau       float64
	act, kind string
	renorm    bool
	lb, zl    float64
	sel       [][]int // per token, the selected experts in rank order
}

func moeRouter(attrs ir.Attrs, h *Tensor, tau float64) *router {
	r := &router{T: h.Shape[0], E: h.Shape[1], K: attrs.Int("k", 1), h: h.F, tau: tau,
		act: attrs.Str("act", "none"), kind: attrs.Str("gate", "topk_softmax"), renorm: attrs.Bool("renormalize", false),
		lb: attrs.Float("load_balance", 0), zl: attrs.Float("z_loss", 0)}
	r.a = make([]float64, len(h.F))
	for i, v := range h.F {
		r.a[i] = Act(r.act, v)
	}
	r.sel = make([][]int, r.T)
	for t := range r.sel {
		r.sel[t] = TopK(r.a[t*r.E:(t+1)*r.E], r.K)
	}
	return r
}

// TopK returns the indices of the k largest values in rank order; ties go
// to the lower index.
func TopK(v []float64, k int) []int {
	out := make([]int, 0, k)
	taken := make([]bool, len(v))
	for range k {
		best := -1
		for i, x := range v {
			if !taken[i] && (best < 0 || x > v[best]) {
				best = i
			}
		}
		taken[best] = true
		out = append(out, best)
	}
	return out
}

// counts is the number of top-k choices of each expert, before capacity.
func (r *router) counts() []int {
	n := make([]int, r.E)
	for _, s := range r.sel {
		for _, e := range s {
			n[e]++
		}
	}
	return n
}

// assign gives each expert its tokens in priority order (choice rank, then
// token index), at most capacity of them.
func (r *router) assign(capacity int) [][]int {
	out := make([][]int, r.E)
	for j := 0; j < r.K; j++ {
		for t := 0; t < r.T; t++ {
			e := r.sel[t][j]
			if len(out[e]) < capacity {
				out[e] = append(out[e], t)
			}
		}
	}
	return out
}

// probs is softmax(act(h_t)/τ) over every expert.
func (r *router) probs(t int) []float64 {
	return softmax64(r.a[t*r.E:(t+1)*r.E], r.tau, nil)
}

// softmax64 is softmax(v/τ) over the indices in keep (all when nil); the
// other entries are 0.
func softmax64(v []float64, tau float64, keep []int) []float64 {
	p := make([]float64, len(v))
	idx := keep
	if idx == nil {
		idx = make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
	}
	mx := math.Inf(-1)
	for _, i := range idx {
		mx = math.Max(mx, v[i]/tau)
	}
	var sum float64
	for _, i := range idx {
		p[i] = math.Exp(v[i]/tau - mx)
		sum += p[i]
	}
	for _, i := range idx {
		p[i] /= sum
	}
	return p
}

// gate is token t's routing weights over all experts.
func (r *router) gate(t int) []float64 {
	av := r.a[t*r.E : (t+1)*r.E]
	switch {
	case r.kind == "dense":
		return softmax64(av, r.tau, nil)
	case r.kind == "topk_softmax" || r.renorm:
		return softmax64(av, r.tau, r.sel[t])
	}
	p := softmax64(av, r.tau, nil)
	w := make([]float64, r.E)
	for _, e := range r.sel[t] {
		w[e] = p[e]
	}
	return w
}

// gateGrad writes dh for token t from dG = dL/dw.
func (r *router) gateGrad(t int, dg, dh []float64) {
	av := r.a[t*r.E : (t+1)*r.E]
	ds := make([]float64, r.E)
	switch {
	case r.kind == "dense" || r.kind == "topk_softmax" || r.renorm:
		// w = softmax over a set K: ds_j = w_j (g_j − Σ_K g·w) on K.
		w := r.gate(t)
		var dot float64
		for e := range w {
			dot += dg[e] * w[e]
		}
		for e := range w {
			ds[e] = w[e] * (dg[e] - dot)
		}
	default:
		// w_e = p_e on K: ds_j = p_j (g_j [j∈K] − Σ_K g·p).
		p := softmax64(av, r.tau, nil)
		var dot float64
		for _, e := range r.sel[t] {
			dot += dg[e] * p[e]
		}
		for j := range p {
			g := 0.0
			if containsInt(r.sel[t], j) {
				g = dg[j]
			}
			ds[j] = p[j] * (g - dot)
		}
	}
	for j := range ds {
		dh[j] = ds[j] / r.tau * ActGrad(r.act, r.h[t*r.E+j])
	}
}

// aux is the auxiliary loss; with dh non-nil it writes daux·∂aux/∂h there.
func (r *router) aux(daux float64, dh []float64) float64 {
	var loss float64
	if r.lb != 0 {
		f := make([]float64, r.E)
		for e, n := range r.counts() {
			f[e] = float64(n) / float64(r.T*r.K)
		}
		P := make([]float64, r.E)
		for t := 0; t < r.T; t++ {
			p := r.probs(t)
			for e := range P {
				P[e] += p[e] / float64(r.T)
			}
			if dh != nil {
				var dot float64
				for e := range p {
					dot += f[e] * p[e]
				}
				c := daux * r.lb * float64(r.E) / float64(r.T) / r.tau
				for j := range p {
					dh[t*r.E+j] += c * p[j] * (f[j] - dot) * ActGrad(r.act, r.h[t*r.E+j])
				}
			}
		}
		for e := range P {
			loss += r.lb * float64(r.E) * f[e] * P[e]
		}
	}
	if r.zl != 0 {
		for t := 0; t < r.T; t++ {
			row := r.h[t*r.E : (t+1)*r.E]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, v)
			}
			var s float64
			for _, v := range row {
				s += math.Exp(v - mx)
			}
			lse := mx + math.Log(s)
			loss += r.zl * lse * lse / float64(r.T)
			if dh != nil {
				for j, v := range row {
					dh[t*r.E+j] += daux * r.zl * 2 * lse * math.Exp(v-lse) / float64(r.T)
				}
			}
		}
	}
	return loss
}

// Anneal is the value of a scheduled knob at a step (the anneal op).
func Anneal(a ir.Attrs, step int) float64 {
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

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func sortedInts(s []int) []int {
	out := append([]int(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
