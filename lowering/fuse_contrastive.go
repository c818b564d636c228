package lowering

import (
	"fmt"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// fuseContrastive replaces a contrastive loss and its backward, as the
// compiler and autodiff emit them,
//
//	z = l2_normalize(h)                       (optional: absorbed when only the loss reads z)
//	S = matmul(za, zb) {transpose_b}
//	L = scale(S) | row_scale(S, invtau)
//	M, P = contrastive_mask(S, [labels], [matmul(ga, gb) {transpose_b}])
//	loss = soft_xent(L, M, P)
//	dL = soft_xent_grad(L, M, P, dloss)
//	dS = scale(dL) | row_scale(dL, invtau)
//	[dinvtau = reduce_sum(mul(dL, S)) {axis = 1}]
//	dza = matmul(dS, zb); dzb = matmul(dS, za) {transpose_a}
//	dz = add(dza, dzb)                        (one tower)
//	dh = l2_normalize_grad(dz, h)
//
// by one contrastive_xent_fused instruction that streams blocks of S and
// never stores an N×N value. The fused instruction keeps the loss, the
// gradient and dinvtau values, so their readers are untouched; it takes the
// place of the last instruction it replaces. Anything that does not match
// exactly (an intermediate read elsewhere, another layout) stays unfused.
func fuseContrastive(u *Unit) (bool, error) {
	if u.FusedFrom == nil {
		u.FusedFrom = map[*ir.Instr][]string{}
	}
	fused := 0
	var saved int64
	for _, f := range u.Module.Funcs {
		for {
			m := newContrastiveMatcher(f)
			done := false
			for _, in := range f.Body {
				if in.Op != "soft_xent" {
					continue
				}
				fz, ok := m.match(in)
				if !ok {
					continue
				}
				if err := m.apply(u, fz); err != nil {
					return false, fmt.Errorf("func %s: %w", f.Name, err)
				}
				fused++
				saved += fz.saved
				done = true
				break
			}
			if !done {
				break
			}
		}
	}
	if fused > 0 {
		u.note = fmt.Sprintf("%d contrastive_xent_fused, N×N intermediates removed: %s", fused, formatBytes(saved))
	}
	return fused > 0, nil
}

// ContrastiveTile is the block size of the fused kernel: 256×256 similarity
// tiles (256 KiB) stay in a core's L2 next to the 128-wide row blocks, and
// the GEMMs on them run near the machine's single-core rate.
func ContrastiveTile(rows int) int { return 256 }

type contrastiveMatcher struct {
	f       *ir.Func
	users   map[*ir.Value][]*ir.Instr
	outputs map[*ir.Value]bool
	pos     map[*ir.Instr]int
}

func newContrastiveMatcher(f *ir.Func) *contrastiveMatcher {
	m := &contrastiveMatcher{f: f, users: map[*ir.Value][]*ir.Instr{}, outputs: map[*ir.Value]bool{}, pos: map[*ir.Instr]int{}}
	for i, in := range f.Body {
		m.pos[in] = i
		for _, a := range in.Args {
			if !slices.Contains(m.users[a], in) {
				m.users[a] = append(m.users[a], in)
			}
		}
	}
	for _, o := range f.Outputs {
		m.outputs[o.Value] = true
	}
	return m
}

// contrastiveFusion is one match: the instructions it replaces and the
// fused instruction's operands, attributes and results.
type contrastiveFusion struct {
	replaced []*ir.Instr
	args     []*ir.Value
	attrs    ir.Attrs
	results  []*ir.Value
	saved    int64 // bytes of the N×N values that disappear
	loc      ir.Loc
}

func (m *contrastiveMatcher) def(v *ir.Value, op string) *ir.Instr {
	if v == nil || v.Def == nil || v.Def.Op != op {
		return nil
	}
	return v.Def
}

// usersOf returns the readers of v, or nil when v is a function output.
func (m *contrastiveMatcher) usersOf(v *ir.Value) []*ir.Instr {
	if m.outputs[v] {
		return nil
	}
	return m.users[v]
}

// userWith finds the one reader of v with the given op that satisfies ok.
func (m *contrastiveMatcher) userWith(v *ir.Value, op string, ok func(*ir.Instr) bool) *ir.Instr {
	var found *ir.Instr
	for _, u := range m.users[v] {
		if u.Op == op && ok(u) {
			if found != nil {
				return nil
			}
			found = u
		}
	}
	return found
}

func (m *contrastiveMatcher) match(x *ir.Instr) (*contrastiveFusion, bool) {
	L, M, P := x.Args[0], x.Args[1], x.Args[2]
	cm := m.def(M, "contrastive_mask")
	if cm == nil || cm.Results[1] != P {
		return nil, false
	}
	S := cm.Args[0]
	ld := L.Def
	if ld == nil || !(ld.Op == "scale" || ld.Op == "row_scale") || ld.Args[0] != S {
		return nil, false
	}
	sd := m.def(S, "matmul")
	if sd == nil || sd.Attrs.Bool("transpose_a", false) || !sd.Attrs.Bool("transpose_b", false) {
		return nil, false
	}
	za, zb := sd.Args[0], sd.Args[1]
	obj := cm.Attrs.Str("objective", "")
	dual := obj == "dual"
	if dual == (za == zb) {
		return nil, false
	}
	attrs := ir.Attrs{"objective": obj, "tile": ContrastiveTile(S.Type.Shape[0])}
	if k := cm.Attrs.Int("hard_k", 0); k > 0 {
		attrs["hard_k"] = k
	}
	set := []*ir.Instr{x, cm, ld, sd}
	var invTau *ir.Value
	if ld.Op == "scale" {
		attrs["inv_temperature"] = ld.Attrs.Float("factor", 1)
	} else {
		invTau = ld.Args[1]
		attrs["tau_input"] = true
	}

	// The backward.
	g := m.userWith(L, "soft_xent_grad", func(in *ir.Instr) bool { return in.Args[1] == M && in.Args[2] == P })
	if g == nil {
		return nil, false
	}
	dL := g.Result()
	var ds, mu, rs *ir.Instr
	for _, u := range m.usersOf(dL) {
		switch {
		case u.Op == ld.Op && u.Args[0] == dL && (ld.Op == "scale" && sameAttrs(normAttrs("scale", u.Attrs), normAttrs("scale", ld.Attrs)) ||
			ld.Op == "row_scale" && u.Args[1] == invTau):
			ds = u
		case u.Op == "mul" && ld.Op == "row_scale" && (u.Args[0] == S && u.Args[1] == dL || u.Args[0] == dL && u.Args[1] == S):
			mu = u
		default:
			return nil, false
		}
	}
	if ds == nil {
		return nil, false
	}
	set = append(set, g, ds)
	var dtau *ir.Value
	if mu != nil {
		us := m.usersOf(mu.Result())
		if len(us) != 1 || us[0].Op != "reduce_sum" || us[0].Attrs.Int("axis", 0) != 1 || invTau.Type.Rank() != 1 {
			return nil, false
		}
		rs = us[0]
		set = append(set, mu, rs)
		dtau = rs.Result()
		attrs["want_dtau"] = true
	}
	dS := ds.Result()
	plain := func(in *ir.Instr, ta bool) bool {
		return in.Attrs.Bool("transpose_a", false) == ta && !in.Attrs.Bool("transpose_b", false)
	}
	mm1 := m.userWith(dS, "matmul", func(in *ir.Instr) bool { return in.Args[0] == dS && in.Args[1] == zb && plain(in, false) })
	mm2 := m.userWith(dS, "matmul", func(in *ir.Instr) bool { return in.Args[0] == dS && in.Args[1] == za && plain(in, true) })
	if mm1 == nil || mm2 == nil || len(m.usersOf(dS)) != 2 {
		return nil, false
	}
	set = append(set, mm1, mm2)
	dza, dzb := mm1.Result(), mm2.Result()
	if !dual {
		us1, us2 := m.usersOf(dza), m.usersOf(dzb)
		if len(us1) != 1 || len(us2) != 1 || us1[0] != us2[0] || us1[0].Op != "add" {
			return nil, false
		}
		set = append(set, us1[0])
		dza, dzb = us1[0].Result(), nil
	}

	// Operands beyond the rows: temperature, labels, guide.
	ha, hb := za, zb
	var labels, ga, gb *ir.Value
	next := 1
	if obj == "supcon" {
		labels = cm.Args[next]
		attrs["classes"] = cm.Attrs.Int("classes", 0)
		next++
	}
	if cm.Attrs.Bool("guided", false) {
		gd := m.def(cm.Args[next], "matmul")
		if gd == nil || gd.Attrs.Bool("transpose_a", false) || !gd.Attrs.Bool("transpose_b", false) ||
			len(m.usersOf(gd.Result())) != 1 || dual == (gd.Args[0] == gd.Args[1]) {
			return nil, false
		}
		set = append(set, gd)
		ga, gb = gd.Args[0], gd.Args[1]
		attrs["guided"] = true
	}

	// Absorb l2_normalize and its gradient when only the loss reads z.
	absorb := func(z, dz *ir.Value, readers ...*ir.Instr) (nz, ng *ir.Instr) {
		nz = m.def(z, "l2_normalize")
		if nz == nil || m.outputs[z] {
			return nil, nil
		}
		for _, u := range m.users[z] {
			if !slices.Contains(readers, u) {
				return nil, nil
			}
		}
		us := m.usersOf(dz)
		if len(us) != 1 || us[0].Op != "l2_normalize_grad" || us[0].Args[0] != dz || us[0].Args[1] != nz.Args[0] {
			return nil, nil
		}
		return nz, us[0]
	}
	daOut, auxOut := dza, dzb
	if dual {
		na, nga := absorb(za, dza, sd, mm2)
		nb, ngb := absorb(zb, dzb, sd, mm1)
		if na != nil && nb != nil {
			set = append(set, na, nga, nb, ngb)
			ha, hb, daOut, auxOut = na.Args[0], nb.Args[0], nga.Result(), ngb.Result()
			attrs["normalize"] = true
		}
	} else if na, nga := absorb(za, dza, sd, mm1, mm2); na != nil {
		set = append(set, na, nga)
		ha, daOut = na.Args[0], nga.Result()
		attrs["normalize"] = true
	}
	if dtau != nil {
		auxOut = dtau
	}

	// Every N×N value dies with the fusion.
	for _, v := range []*ir.Value{S, L, M, P, dL, dS} {
		for _, u := range m.usersOf(v) {
			if !slices.Contains(set, u) {
				return nil, false
			}
		}
		if m.outputs[v] {
			return nil, false
		}
	}
	if mu != nil && m.outputs[mu.Result()] {
		return nil, false
	}

	fz := &contrastiveFusion{attrs: attrs, loc: x.Loc}
	fz.args = []*ir.Value{ha}
	if dual {
		fz.args = append(fz.args, hb)
	}
	if invTau != nil {
		fz.args = append(fz.args, invTau)
	}
	if labels != nil {
		fz.args = append(fz.args, labels)
	}
	if ga != nil {
		fz.args = append(fz.args, ga)
		if dual {
			fz.args = append(fz.args, gb)
		}
	}
	fz.args = append(fz.args, g.Args[3])
	if auxOut == nil {
		auxOut = &ir.Value{Name: "unused", Type: ir.Scalar(ir.F32)}
	}
	fz.results = []*ir.Value{x.Result(), daOut, auxOut}
	slices.SortFunc(set, func(a, b *ir.Instr) int { return m.pos[a] - m.pos[b] })
	fz.replaced = set
	for _, in := range set {
		for _, r := range in.Results {
			if r.Type.Rank() == 2 && r.Type.Shape[0] == S.Type.Shape[0] && r.Type.Shape[1] == S.Type.Shape[1] {
				fz.saved += align(r.Type.Bytes())
			}
		}
	}
	return fz, true
}

func (m *contrastiveMatcher) apply(u *Unit, fz *contrastiveFusion) error {
	types := make([]ir.Type, len(fz.args))
	for i, a := range fz.args {
		types[i] = a.Type
	}
	rts, err := ir.InferTypes("contrastive_xent_fused", types, fz.attrs)
	if err != nil {
		return fmt.Errorf("fusing the contrastive loss: %w", err)
	}
	for i, t := range rts {
		if !t.Equal(fz.results[i].Type) {
			return fmt.Errorf("fusing the contrastive loss: result %d is %s, the unfused value %%%s is %s", i, t, fz.results[i].Name, fz.results[i].Type)
		}
	}
	in := &ir.Instr{Op: "contrastive_xent_fused", Args: fz.args, Attrs: fz.attrs, Results: fz.results, Loc: fz.loc}
	if fz.results[2].Def == nil && fz.results[2].Name == "unused" {
		fz.results[2].Name = ir.NewBuilder(m.f).Fresh("unused")
	}
	var from []string
	for _, r := range fz.replaced {
		if prior, ok := u.FusedFrom[r]; ok {
			from = append(from, prior...)
		} else {
			from = append(from, r.Op)
		}
		delete(u.FusedFrom, r)
	}
	for _, r := range fz.results {
		r.Def = in
	}
	u.FusedFrom[in] = from
	last := fz.replaced[len(fz.replaced)-1]
	body := make([]*ir.Instr, 0, len(m.f.Body))
	for _, b := range m.f.Body {
		switch {
		case b == last:
			body = append(body, in)
		case slices.Contains(fz.replaced, b):
		default:
			body = append(body, b)
		}
	}
	m.f.Body = stableTopo(m.f, body)
	return nil
}

// stableTopo orders body so that every instruction comes after the
// definitions of its arguments, keeping the given order wherever it is
// already valid. The fused instruction sits where the last instruction it
// replaces was, which is after readers of the loss (a symmetric loss adds
// both directions in the forward): those move down behind it.
func stableTopo(f *ir.Func, body []*ir.Instr) []*ir.Instr {
	defined := map[*ir.Value]bool{}
	for _, p := range f.Params {
		defined[p] = true
	}
	out := make([]*ir.Instr, 0, len(body))
	done := make([]bool, len(body))
	for len(out) < len(body) {
		progress := false
		for i, in := range body {
			if done[i] || !allDefined(in.Args, defined) {
				continue
			}
			done[i], progress = true, true
			out = append(out, in)
			for _, r := range in.Results {
				defined[r] = true
			}
			break // restart from the top: earlier instructions first
		}
		if !progress { // a cycle cannot happen in SSA; keep what is left in order
			for i, in := range body {
				if !done[i] {
					out = append(out, in)
				}
			}
			break
		}
	}
	return out
}

func allDefined(args []*ir.Value, defined map[*ir.Value]bool) bool {
	for _, a := range args {
		if !defined[a] {
			return false
		}
	}
	return true
}
