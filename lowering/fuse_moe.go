package lowering

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// fuseMoEGating replaces each mixture-of-experts layer, forward and
// backward, as the compiler and autodiff emit it (see ir/optable_moe.go):
//
//	forward, per expert e:   idx_e = moe_dispatch(h); x_e = moe_gather(x, idx_e);
//	                         a_e = act(x_e·W1_e + b1_e); y_e = a_e·W2_e + b2_e;
//	                         c_e = moe_scatter(moe_scale_rows(y_e, moe_gate_take(G, idx_e)), idx_e)
//	                         y = c_0 + … + c_{E−1};  G = moe_gate(h, τ);  [moe_aux(h, τ)];  [moe_stats(h)]
//	backward, per expert e:  the gathers, scales, row dots, GEMMs, activation gradients,
//	                         bias sums and scatters autodiff derives from the above
//
// with
//
//	perm, offsets, w, slots, load, dropped, aux = moe_route(h, τ)
//	xp, [z], a, ys = moe_ffn(x, perm, offsets, W1…, b1…, W2…, b2…)
//	y              = moe_combine(ys, slots, w)
//	dys, dw        = moe_combine_grad(dy, ys, w, perm)
//	[dxp], dz, dW1…, db1…, dW2…, db2… = moe_ffn_grad(dys, xp, [z], a, offsets, W1…, W2…)
//	dx_experts     = moe_combine(dxp, slots)
//	dh             = moe_route_grad(dw, h, τ, perm, slots, [daux])
//
// The region's boundary values keep their readers: y, the metrics and the
// aux loss, every expert's weight and bias gradients, the experts' share of
// dx (the sum of the per-expert scatters; the router's share is still added
// to it) and dh (gate and aux gradients). Anything that does not match
// exactly, or an intermediate read outside the region, leaves the layer
// unfused, and the pass note says why.
func fuseMoEGating(u *Unit) (bool, error) {
	if u.FusedFrom == nil {
		u.FusedFrom = map[*ir.Instr][]string{}
	}
	fused := 0
	var skipped []string
	for _, f := range u.Module.Funcs {
		for _, g := range slices.Clone(f.Body) {
			if g.Op != "moe_gate" || !slices.Contains(f.Body, g) {
				continue
			}
			m := newMoEMatcher(f)
			r, why := m.match(g)
			if r == nil {
				if why != "" {
					skipped = append(skipped, f.Name+": "+why)
				}
				continue
			}
			if err := m.apply(u, r); err != nil {
				return false, fmt.Errorf("func %s: %w", f.Name, err)
			}
			fused++
		}
	}
	note := ""
	if fused > 0 {
		note = strconv.Itoa(fused) + " moe layers"
	}
	if len(skipped) > 0 {
		if note != "" {
			note += "; "
		}
		note += "left unfused: " + skipped[0]
		if len(skipped) > 1 {
			note += fmt.Sprintf(" (and %d more)", len(skipped)-1)
		}
	}
	u.note = note
	return fused > 0, nil
}

type moeMatcher struct {
	f       *ir.Func
	users   map[*ir.Value][]*ir.Instr
	outputs map[*ir.Value]bool
	pos     map[*ir.Instr]int
}

func newMoEMatcher(f *ir.Func) *moeMatcher {
	m := &moeMatcher{f: f, users: map[*ir.Value][]*ir.Instr{}, outputs: map[*ir.Value]bool{}, pos: map[*ir.Instr]int{}}
	for i, in := range f.Body {
		m.pos[in] = i
		for _, a := range in.Args {
			m.users[a] = append(m.users[a], in)
		}
	}
	for _, o := range f.Outputs {
		m.outputs[o.Value] = true
	}
	return m
}

// moeExpert is one expert's part of the region.
type moeExpert struct {
	idx                *ir.Value
	w1, b1, w2, b2     *ir.Value
	xe, zb, a, ye, ge  *ir.Value // forward values
	fwd                []*ir.Instr
	dW1, db1, dW2, db2 *ir.Value // backward boundary values (nil in eval)
	dxe                *ir.Value // the scatter of dx_e (nil without dx)
	dGe                *ir.Value // moe_gate_put
	dy                 *ir.Value // the incoming gradient of y
	bwd                []*ir.Instr
}

// moeRegion is one matched layer.
type moeRegion struct {
	gate          *ir.Instr
	h, tau, x     *ir.Value
	act           string
	capacity      int
	experts       []*moeExpert
	y             *ir.Value   // root of the forward sum
	fwdSum        []*ir.Instr // its adds
	stats, aux    *ir.Instr   // moe_stats, moe_aux (or nil)
	backward      bool
	dy, daux      *ir.Value
	dxRoot        *ir.Value // root of the experts' dx sum (nil without dx)
	dxSum         []*ir.Instr
	dGSum         []*ir.Instr
	gateGrad      *ir.Instr
	auxGrad       *ir.Instr
	dh            *ir.Value   // what dh's readers read: gate grad, or gate + aux grads
	dhAdd         *ir.Instr   // the add of the two (nil without aux)
	removed       []*ir.Instr // every instruction the region replaces
	removedValues map[*ir.Value]bool
}

// only returns the single user of v with op, or nil.
func (m *moeMatcher) usersOf(v *ir.Value, op string) []*ir.Instr {
	var out []*ir.Instr
	for _, u := range m.users[v] {
		if u.Op == op {
			out = append(out, u)
		}
	}
	return out
}

func (m *moeMatcher) one(v *ir.Value, op string, pred func(*ir.Instr) bool) *ir.Instr {
	var hit *ir.Instr
	for _, u := range m.usersOf(v, op) {
		if pred == nil || pred(u) {
			if hit != nil {
				return nil
			}
			hit = u
		}
	}
	return hit
}

func attrsOf(in *ir.Instr) ir.Attrs { return normAttrs(in.Op, in.Attrs) }

// match finds the layer whose gate is g. It returns nil and a reason when
// the graph around g is not an MoE layer the pass can fuse (nil and "" when
// g is not followed by experts at all, as in a gaussian_moe head).
func (m *moeMatcher) match(g *ir.Instr) (*moeRegion, string) {
	r := &moeRegion{gate: g, h: g.Args[0], tau: g.Args[1]}
	E := r.h.Type.Shape[1]
	ga := attrsOf(g)
	disp := m.usersOf(r.h, "moe_dispatch")
	if len(disp) == 0 {
		return nil, ""
	}
	if len(disp) != E {
		return nil, fmt.Sprintf("%d dispatches for %d experts", len(disp), E)
	}
	r.experts = make([]*moeExpert, E)
	for _, d := range disp {
		a := attrsOf(d)
		e := a.Int("expert", -1)
		if e < 0 || e >= E || r.experts[e] != nil || a.Int("k", 0) != ga.Int("k", 0) || a.Str("act", "none") != ga.Str("act", "none") {
			return nil, "dispatch attributes differ from the gate's"
		}
		if r.capacity == 0 {
			r.capacity = a.Int("capacity", 0)
		} else if a.Int("capacity", 0) != r.capacity {
			return nil, "experts with different capacities"
		}
		r.experts[e] = &moeExpert{idx: d.Result()}
		r.removed = append(r.removed, d)
	}
	// h's other readers: the aux loss and the metrics.
	for _, in := range m.users[r.h] {
		switch in.Op {
		case "moe_gate", "moe_dispatch":
		case "moe_stats":
			if r.stats != nil || !sameSel(attrsOf(in), ga, r.capacity) {
				return nil, "an unexpected moe_stats"
			}
			r.stats = in
		case "moe_aux":
			if r.aux != nil || in.Args[1] != r.tau || !sameSel(attrsOf(in), ga, -1) {
				return nil, "an unexpected moe_aux"
			}
			r.aux = in
		case "moe_gate_grad", "moe_aux_grad":
		default:
			return nil, "the router logits are read by " + in.Op
		}
	}
	// The router is h = x·W + b: x is what the experts read.
	if r.h.Def == nil || r.h.Def.Op != "bias_add" || r.h.Def.Args[0].Def == nil || r.h.Def.Args[0].Def.Op != "matmul" ||
		len(normAttrs("matmul", r.h.Def.Args[0].Def.Attrs)) != 0 {
		return nil, "the router is not x·W + b"
	}
	r.x = r.h.Def.Args[0].Def.Args[0]
	var why string
	for e, ex := range r.experts {
		if why = m.matchForward(r, e, ex, g.Result()); why != "" {
			return nil, fmt.Sprintf("expert %d: %s", e, why)
		}
	}
	var leaves []*ir.Value
	for _, ex := range r.experts {
		leaves = append(leaves, ex.fwd[len(ex.fwd)-1].Result())
	}
	r.y, r.fwdSum = m.sumTree(leaves)
	if r.y == nil {
		return nil, "the experts' outputs are not summed"
	}
	r.removed = append(r.removed, g)
	for _, ex := range r.experts {
		r.removed = append(r.removed, ex.fwd...)
	}
	r.removed = append(r.removed, r.fwdSum...)
	if why = m.matchBackward(r); why != "" {
		return nil, why
	}
	r.removedValues = map[*ir.Value]bool{}
	for _, in := range r.removed {
		for _, res := range in.Results {
			r.removedValues[res] = true
		}
	}
	// Every removed value is either a boundary value (redirected) or read
	// only inside the region.
	boundary := r.boundary(nil)
	for _, in := range r.removed {
		for _, res := range in.Results {
			if _, ok := boundary[res]; ok {
				continue
			}
			if m.outputs[res] {
				return nil, "%" + res.Name + " is a function output"
			}
			for _, u := range m.users[res] {
				if !slices.Contains(r.removed, u) {
					return nil, "%" + res.Name + " is read outside the layer by " + u.Op
				}
			}
		}
	}
	return r, ""
}

// sameSel reports whether a routing op selects like the gate (same k and
// router activation) and, when capacity >= 0, has that capacity.
func sameSel(a, gate ir.Attrs, capacity int) bool {
	return a.Int("k", 0) == gate.Int("k", 0) && a.Str("act", "none") == gate.Str("act", "none") &&
		(capacity < 0 || a.Int("capacity", 0) == capacity)
}

// matchForward follows expert e from its dispatch to its scatter.
func (m *moeMatcher) matchForward(r *moeRegion, e int, ex *moeExpert, G *ir.Value) string {
	idx := ex.idx
	gather := m.one(idx, "moe_gather", func(in *ir.Instr) bool { return in.Args[0] == r.x })
	take := m.one(idx, "moe_gate_take", func(in *ir.Instr) bool { return in.Args[0] == G })
	if gather == nil || take == nil || attrsOf(take).Int("expert", -1) != e {
		return "no gather of its tokens or of its gate weights"
	}
	// The forward gather's matmul is the one with the gathered rows on the left.
	mm1 := m.one(gather.Result(), "matmul", func(in *ir.Instr) bool {
		return in.Args[0] == gather.Result() && len(normAttrs("matmul", in.Attrs)) == 0
	})
	if mm1 == nil {
		return "no first-layer GEMM"
	}
	ba1 := m.one(mm1.Result(), "bias_add", nil)
	if ba1 == nil || len(m.users[mm1.Result()]) != 1 {
		return "no first-layer bias"
	}
	var act *ir.Instr
	for _, u := range m.users[ba1.Result()] {
		if isActivation(u.Op) && u.Args[0] == ba1.Result() {
			act = u
		}
	}
	if act == nil {
		return "no activation"
	}
	if r.act == "" {
		r.act = act.Op
	} else if r.act != act.Op {
		return "experts with different activations"
	}
	mm2 := m.one(act.Result(), "matmul", func(in *ir.Instr) bool {
		return in.Args[0] == act.Result() && len(normAttrs("matmul", in.Attrs)) == 0
	})
	if mm2 == nil {
		return "no second-layer GEMM"
	}
	ba2 := m.one(mm2.Result(), "bias_add", nil)
	if ba2 == nil || len(m.users[mm2.Result()]) != 1 {
		return "no second-layer bias"
	}
	scale := m.one(ba2.Result(), "moe_scale_rows", func(in *ir.Instr) bool { return in.Args[1] == take.Result() })
	if scale == nil {
		return "its outputs are not weighted by its gate"
	}
	scatter := m.one(scale.Result(), "moe_scatter", func(in *ir.Instr) bool { return in.Args[1] == idx })
	if scatter == nil || len(m.users[scale.Result()]) != 1 || m.outputs[scale.Result()] {
		return "its weighted outputs are not scattered back"
	}
	ex.w1, ex.b1, ex.w2, ex.b2 = mm1.Args[1], ba1.Args[1], mm2.Args[1], ba2.Args[1]
	ex.xe, ex.zb, ex.a, ex.ye, ex.ge = gather.Result(), ba1.Result(), act.Result(), ba2.Result(), take.Result()
	ex.fwd = []*ir.Instr{gather, mm1, ba1, act, mm2, ba2, take, scale, scatter}
	return ""
}

// sumTree finds the adds that sum exactly the leaves (each intermediate
// read once) and returns the root; nil when there is no such tree.
func (m *moeMatcher) sumTree(leaves []*ir.Value) (*ir.Value, []*ir.Instr) {
	pending := slices.Clone(leaves)
	var adds []*ir.Instr
	for len(pending) > 1 {
		found := false
		for _, v := range pending {
			if len(m.users[v]) != 1 || m.outputs[v] {
				continue
			}
			add := m.users[v][0]
			if add.Op != "add" || add.Args[0] == add.Args[1] {
				continue
			}
			other := add.Args[0]
			if other == v {
				other = add.Args[1]
			}
			if !slices.Contains(pending, other) || len(m.users[other]) != 1 || m.outputs[other] {
				continue
			}
			pending = slices.DeleteFunc(pending, func(p *ir.Value) bool { return p == v || p == other })
			pending = append(pending, add.Result())
			adds = append(adds, add)
			found = true
			break
		}
		if !found {
			return nil, nil
		}
	}
	return pending[0], adds
}

// matchBackward finds what autodiff derived from the forward region. A
// function without it (eval) has no gather of the incoming gradient.
func (m *moeMatcher) matchBackward(r *moeRegion) string {
	for e, ex := range r.experts {
		dgather := m.one(ex.idx, "moe_gather", func(in *ir.Instr) bool { return in.Args[0] != r.x })
		if dgather == nil {
			if e == 0 {
				break
			}
			return fmt.Sprintf("expert %d has no backward", e)
		}
		r.backward = true
		if why := m.matchExpertBackward(r, ex, dgather); why != "" {
			return fmt.Sprintf("expert %d backward: %s", e, why)
		}
		if r.dy == nil {
			r.dy = ex.dy
		} else if r.dy != ex.dy {
			return "experts see different gradients of the output"
		}
	}
	if !r.backward {
		for _, u := range m.users[r.h] {
			if u.Op == "moe_gate_grad" || u.Op == "moe_aux_grad" {
				return "a gate gradient without expert gradients"
			}
		}
		return ""
	}
	var dGs, dxs []*ir.Value
	for _, ex := range r.experts {
		dGs = append(dGs, ex.dGe)
		if ex.dxe != nil {
			dxs = append(dxs, ex.dxe)
		}
	}
	if len(dxs) != 0 && len(dxs) != len(r.experts) {
		return "only some experts pass a gradient to their input"
	}
	if len(dxs) > 0 {
		if r.dxRoot, r.dxSum = m.sumTree(dxs); r.dxRoot == nil {
			return "the experts' input gradients are not summed"
		}
		r.removed = append(r.removed, r.dxSum...)
	}
	dG, adds := m.sumTree(dGs)
	if dG == nil {
		return "the gate weights' gradients are not summed"
	}
	r.dGSum = adds
	r.removed = append(r.removed, adds...)
	r.gateGrad = m.one(dG, "moe_gate_grad", func(in *ir.Instr) bool {
		return in.Args[1] == r.h && in.Args[2] == r.tau && sameAttrs(attrsOf(in), attrsOf(r.gate))
	})
	if r.gateGrad == nil || len(m.users[dG]) != 1 {
		return "no gate gradient"
	}
	r.removed = append(r.removed, r.gateGrad)
	r.dh = r.gateGrad.Result()
	if r.aux != nil {
		r.auxGrad = m.one(r.h, "moe_aux_grad", func(in *ir.Instr) bool {
			return in.Args[2] == r.tau && sameAttrs(attrsOf(in), attrsOf(r.aux))
		})
	}
	if r.auxGrad != nil {
		r.daux = r.auxGrad.Args[0]
		gu, au := m.users[r.gateGrad.Result()], m.users[r.auxGrad.Result()]
		if len(gu) != 1 || len(au) != 1 || gu[0] != au[0] || gu[0].Op != "add" ||
			m.outputs[r.gateGrad.Result()] || m.outputs[r.auxGrad.Result()] {
			return "the gate and aux gradients are not added"
		}
		r.dhAdd = gu[0]
		r.dh = r.dhAdd.Result()
		r.removed = append(r.removed, r.auxGrad, r.dhAdd)
	}
	return ""
}

// matchExpertBackward follows one expert's gradient from the gather of dy.
func (m *moeMatcher) matchExpertBackward(r *moeRegion, ex *moeExpert, dgather *ir.Instr) string {
	ex.dy = dgather.Args[0]
	dyw := dgather.Result()
	dscale := m.one(dyw, "moe_scale_rows", func(in *ir.Instr) bool { return in.Args[0] == dyw && in.Args[1] == ex.ge })
	dot := m.one(dyw, "moe_row_dot", func(in *ir.Instr) bool { return in.Args[0] == dyw && in.Args[1] == ex.ye })
	if dscale == nil || dot == nil || len(m.users[dyw]) != 2 {
		return "no weighting of the incoming gradient"
	}
	put := m.one(dot.Result(), "moe_gate_put", func(in *ir.Instr) bool { return in.Args[1] == ex.idx })
	if put == nil || len(m.users[dot.Result()]) != 1 {
		return "no gradient of its gate weights"
	}
	dye := dscale.Result()
	db2 := m.one(dye, "reduce_sum", nil)
	da := m.one(dye, "matmul", func(in *ir.Instr) bool {
		return in.Args[0] == dye && in.Args[1] == ex.w2 && sameAttrs(normAttrs("matmul", in.Attrs), ir.Attrs{"transpose_b": true})
	})
	dW2 := m.one(dye, "matmul", func(in *ir.Instr) bool {
		return in.Args[0] == ex.a && in.Args[1] == dye && sameAttrs(normAttrs("matmul", in.Attrs), ir.Attrs{"transpose_a": true})
	})
	if db2 == nil || da == nil || dW2 == nil || len(m.users[dye]) != 3 {
		return "no second-layer gradients"
	}
	grad := r.act + "_grad"
	dact := m.one(da.Result(), grad, func(in *ir.Instr) bool {
		return in.Args[0] == da.Result() && (in.Args[1] == ex.a || in.Args[1] == ex.zb)
	})
	if dact == nil || len(m.users[da.Result()]) != 1 {
		return "no activation gradient"
	}
	dz := dact.Result()
	db1 := m.one(dz, "reduce_sum", nil)
	dW1 := m.one(dz, "matmul", func(in *ir.Instr) bool {
		return in.Args[0] == ex.xe && in.Args[1] == dz && sameAttrs(normAttrs("matmul", in.Attrs), ir.Attrs{"transpose_a": true})
	})
	dxe := m.one(dz, "matmul", func(in *ir.Instr) bool {
		return in.Args[0] == dz && in.Args[1] == ex.w1 && sameAttrs(normAttrs("matmul", in.Attrs), ir.Attrs{"transpose_b": true})
	})
	if db1 == nil || dW1 == nil {
		return "no first-layer gradients"
	}
	ex.bwd = []*ir.Instr{dgather, dscale, dot, put, db2, da, dW2, dact, db1, dW1}
	want := 2
	if dxe != nil {
		want = 3
		sc := m.one(dxe.Result(), "moe_scatter", func(in *ir.Instr) bool { return in.Args[1] == ex.idx })
		if sc == nil || len(m.users[dxe.Result()]) != 1 {
			return "its input gradient is not scattered back"
		}
		ex.dxe = sc.Result()
		ex.bwd = append(ex.bwd, dxe, sc)
	}
	if len(m.users[dz]) != want {
		return "its first-layer gradient is read elsewhere"
	}
	ex.dW1, ex.db1, ex.dW2, ex.db2, ex.dGe = dW1.Result(), db1.Result(), dW2.Result(), db2.Result(), put.Result()
	r.removed = append(r.removed, ex.bwd...)
	return ""
}

// boundary maps each value whose readers stay to the value that replaces it
// (filled by apply; nil values while matching).
func (r *moeRegion) boundary(repl map[*ir.Value]*ir.Value) map[*ir.Value]*ir.Value {
	b := map[*ir.Value]*ir.Value{r.y: nil}
	if r.stats != nil {
		b[r.stats.Results[0]], b[r.stats.Results[1]] = nil, nil
	}
	if r.aux != nil {
		b[r.aux.Result()] = nil
	}
	if r.backward {
		for _, ex := range r.experts {
			b[ex.dW1], b[ex.db1], b[ex.dW2], b[ex.db2] = nil, nil, nil, nil
		}
		if r.dxRoot != nil {
			b[r.dxRoot] = nil
		}
		b[r.dh] = nil
	}
	for k := range b {
		b[k] = repl[k]
	}
	return b
}

// apply replaces the region by the fused instructions.
func (m *moeMatcher) apply(u *Unit, r *moeRegion) error {
	E := len(r.experts)
	ga := attrsOf(r.gate)
	route := ir.Attrs{"k": ga.Int("k", 1), "gate": ga.Str("gate", "topk_softmax"), "capacity": r.capacity}
	if act := ga.Str("act", ""); act != "" {
		route["act"] = act
	}
	if ga.Bool("renormalize", false) {
		route["renormalize"] = true
	}
	if r.aux != nil {
		aa := attrsOf(r.aux)
		for _, k := range []string{"load_balance", "z_loss"} {
			if v := aa.Float(k, 0); v != 0 {
				route[k] = v
			}
		}
	}
	if r.auxGrad != nil {
		route["aux"] = true
	}
	loc := r.gate.Loc
	var made []*ir.Instr
	names := newNamer(m.f, strings.TrimSuffix(r.h.Name, ".logits"))
	emit := func(op string, args []*ir.Value, attrs ir.Attrs, from []string, stems ...string) (*ir.Instr, error) {
		types := make([]ir.Type, len(args))
		for i, a := range args {
			types[i] = a.Type
		}
		rts, err := ir.InferTypes(op, types, attrs)
		if err != nil {
			return nil, fmt.Errorf("fusing %s: %w", op, err)
		}
		in := &ir.Instr{Op: op, Args: args, Attrs: attrs, Loc: loc}
		for i, t := range rts {
			stem := op
			if i < len(stems) {
				stem = stems[i]
			}
			in.Results = append(in.Results, &ir.Value{Name: names.fresh(stem), Type: t, Def: in})
		}
		u.FusedFrom[in] = from
		made = append(made, in)
		return in, nil
	}
	times := func(n int, op string) string {
		if n == 1 {
			return op
		}
		return strconv.Itoa(n) + "×" + op
	}
	fromRoute := []string{"moe_gate", times(E, "moe_dispatch"), times(E, "moe_gate_take")}
	if r.stats != nil {
		fromRoute = append(fromRoute, "moe_stats")
	}
	if r.aux != nil {
		fromRoute = append(fromRoute, "moe_aux")
	}
	rt, err := emit("moe_route", []*ir.Value{r.h, r.tau}, route, fromRoute, "perm", "offsets", "w", "slots", "load", "dropped", "aux")
	if err != nil {
		return err
	}
	perm, off, w, slots := rt.Results[0], rt.Results[1], rt.Results[2], rt.Results[3]
	ffnArgs := []*ir.Value{r.x, perm, off}
	for g := 0; g < 4; g++ {
		for _, ex := range r.experts {
			ffnArgs = append(ffnArgs, [4]*ir.Value{ex.w1, ex.b1, ex.w2, ex.b2}[g])
		}
	}
	fa := ir.Attrs{"experts": E, "act": r.act}
	ffnNames := []string{"xp", "z", "a", "ys"}
	if !ir.MoEFFNKeepsPre(r.act) {
		ffnNames = []string{"xp", "a", "ys"}
	}
	ffn, err := emit("moe_ffn", ffnArgs, fa, []string{times(E, "moe_gather"), times(2*E, "matmul"), times(2*E, "bias_add"), times(E, r.act)}, ffnNames...)
	if err != nil {
		return err
	}
	ys := ffn.Results[len(ffn.Results)-1]
	comb, err := emit("moe_combine", []*ir.Value{ys, slots, w}, nil, []string{times(E, "moe_scale_rows"), times(E, "moe_scatter"), times(E-1, "add")}, "y")
	if err != nil {
		return err
	}
	repl := map[*ir.Value]*ir.Value{r.y: comb.Result()}
	if r.stats != nil {
		repl[r.stats.Results[0]], repl[r.stats.Results[1]] = rt.Results[4], rt.Results[5]
		r.removed = append(r.removed, r.stats)
	}
	if r.aux != nil {
		repl[r.aux.Result()] = rt.Results[6]
		r.removed = append(r.removed, r.aux)
	}
	fwdCount := len(made)
	if r.backward {
		loc = r.experts[0].bwd[0].Loc
		cg, err := emit("moe_combine_grad", []*ir.Value{r.dy, ys, w, perm}, nil,
			[]string{times(E, "moe_gather"), times(E, "moe_scale_rows"), times(E, "moe_row_dot")}, "d.ys", "d.w")
		if err != nil {
			return err
		}
		gargs := []*ir.Value{cg.Results[0], ffn.Results[0]}
		gargs = append(gargs, ffn.Results[1:len(ffn.Results)-1]...) // [z], a
		gargs = append(gargs, off)
		for _, ex := range r.experts {
			gargs = append(gargs, ex.w1)
		}
		for _, ex := range r.experts {
			gargs = append(gargs, ex.w2)
		}
		gattrs := fa.Clone()
		if r.dxRoot != nil {
			gattrs["dx"] = true
		}
		gemms := 4 * E
		if r.dxRoot != nil {
			gemms += E
		}
		var gradNames []string
		if r.dxRoot != nil {
			gradNames = append(gradNames, "d.xp")
		}
		gradNames = append(gradNames, "d.z")
		for _, p := range []string{"w1", "b1", "w2", "b2"} {
			for e := range E {
				gradNames = append(gradNames, fmt.Sprintf("d.e%d.%s", e, p))
			}
		}
		fg, err := emit("moe_ffn_grad", gargs, gattrs, []string{times(gemms, "matmul"), times(E, r.act+"_grad"), times(2*E, "reduce_sum")}, gradNames...)
		if err != nil {
			return err
		}
		o := 0
		if r.dxRoot != nil {
			dx, err := emit("moe_combine", []*ir.Value{fg.Results[0], slots}, nil, []string{times(E, "moe_scatter"), times(E-1, "add")}, "d.x")
			if err != nil {
				return err
			}
			repl[r.dxRoot] = dx.Result()
			o = 1
		}
		for e, ex := range r.experts {
			repl[ex.dW1] = fg.Results[o+1+e]
			repl[ex.db1] = fg.Results[o+1+E+e]
			repl[ex.dW2] = fg.Results[o+1+2*E+e]
			repl[ex.db2] = fg.Results[o+1+3*E+e]
		}
		rgArgs := []*ir.Value{cg.Results[1], r.h, r.tau, perm, slots}
		fromGrad := []string{times(E, "moe_gate_put"), times(E-1, "add"), "moe_gate_grad"}
		if r.auxGrad != nil {
			rgArgs = append(rgArgs, r.daux)
			fromGrad = append(fromGrad, "moe_aux_grad", "add")
		}
		rg, err := emit("moe_route_grad", rgArgs, route, fromGrad, "d.logits")
		if err != nil {
			return err
		}
		repl[r.dh] = rg.Result()
	}
	// Redirect the boundary values, drop the region, place the new
	// instructions (forward at the gate, backward at the region's first
	// backward instruction) and restore a topological order.
	for old, nv := range repl {
		m.f.ReplaceAllUses(old, nv)
	}
	drop := map[*ir.Instr]bool{}
	for _, in := range r.removed {
		drop[in] = true
		delete(u.FusedFrom, in)
	}
	firstBwd := -1
	if r.backward {
		for _, ex := range r.experts {
			for _, in := range ex.bwd {
				if p := m.pos[in]; firstBwd < 0 || p < firstBwd {
					firstBwd = p
				}
			}
		}
	}
	gatePos := m.pos[r.gate]
	body := make([]*ir.Instr, 0, len(m.f.Body))
	for i, in := range m.f.Body {
		if i == gatePos {
			body = append(body, made[:fwdCount]...)
		}
		if i == firstBwd {
			body = append(body, made[fwdCount:]...)
		}
		if !drop[in] {
			body = append(body, in)
		}
	}
	m.f.Body = topoStable(body)
	return nil
}

// topoStable reorders body so that every value is defined before it is
// read, keeping the given order wherever it already is valid (Kahn's
// algorithm, earliest position first).
func topoStable(body []*ir.Instr) []*ir.Instr {
	pos := map[*ir.Instr]int{}
	for i, in := range body {
		pos[in] = i
	}
	indeg := make([]int, len(body))
	succ := make([][]int, len(body))
	for i, in := range body {
		seen := map[*ir.Instr]bool{}
		for _, a := range in.Args {
			if d := a.Def; d != nil && !seen[d] {
				if p, ok := pos[d]; ok {
					seen[d] = true
					succ[p] = append(succ[p], i)
					indeg[i]++
				}
			}
		}
	}
	ready := &intHeap{}
	for i := range body {
		if indeg[i] == 0 {
			ready.push(i)
		}
	}
	out := make([]*ir.Instr, 0, len(body))
	for ready.len() > 0 {
		i := ready.pop()
		out = append(out, body[i])
		for _, j := range succ[i] {
			if indeg[j]--; indeg[j] == 0 {
				ready.push(j)
			}
		}
	}
	if len(out) != len(body) { // a cycle cannot arise from the rewrite; keep the input for the verifier to report
		return body
	}
	return out
}

// intHeap is a min-heap of ints.
type intHeap struct{ v []int }

func (h *intHeap) len() int { return len(h.v) }

func (h *intHeap) push(x int) {
	h.v = append(h.v, x)
	for i := len(h.v) - 1; i > 0; {
		p := (i - 1) / 2
		if h.v[p] <= h.v[i] {
			break
		}
		h.v[p], h.v[i] = h.v[i], h.v[p]
		i = p
	}
}

func (h *intHeap) pop() int {
	top := h.v[0]
	last := len(h.v) - 1
	h.v[0] = h.v[last]
	h.v = h.v[:last]
	for i := 0; ; {
		l, r, s := 2*i+1, 2*i+2, i
		if l < len(h.v) && h.v[l] < h.v[s] {
			s = l
		}
		if r < len(h.v) && h.v[r] < h.v[s] {
			s = r
		}
		if s == i {
			break
		}
		h.v[i], h.v[s] = h.v[s], h.v[i]
		i = s
	}
	return top
}

// namer hands out value names prefix.stem that the function does not use yet.
type namer struct {
	prefix string
	used   map[string]bool
}

func newNamer(f *ir.Func, prefix string) *namer {
	n := &namer{prefix: prefix, used: map[string]bool{}}
	for _, p := range f.Params {
		n.used[p.Name] = true
	}
	for _, in := range f.Body {
		for _, r := range in.Results {
			n.used[r.Name] = true
		}
	}
	return n
}

func (n *namer) fresh(stem string) string {
	name := n.prefix + "." + stem
	for i := 1; n.used[name]; i++ {
		name = fmt.Sprintf("%s.%s.%d", n.prefix, stem, i)
	}
	n.used[name] = true
	return name
}
