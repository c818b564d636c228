package kerneltest

import (
	"math/rand/v2"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// Cases of the mixture-of-experts ops (ir/optable_moe.go). Index inputs are
// "labels" draws: a few -1 (padding) and repeated tokens, so scatter and
// gate_put add several rows into one.
func init() {
	base := extraCases
	extraCases = func() []Case {
		idx := Fill{"labels", 40}
		cs := append(base(),
			Case{Name: "moe_gather", Op: "moe_gather", Ins: []ir.Type{f32(40, 33), i32(57)}, Fill: []Fill{{"normal", 1}, idx}},
			Case{Name: "moe_scatter", Op: "moe_scatter", Ins: []ir.Type{f32(57, 33), i32(57)}, Fill: []Fill{{"normal", 1}, idx},
				Attrs: ir.Attrs{"rows": 40}},
			Case{Name: "moe_gate_take", Op: "moe_gate_take", Ins: []ir.Type{f32(40, 6), i32(57)}, Fill: []Fill{{"normal", 1}, idx},
				Attrs: ir.Attrs{"expert": 4}},
			Case{Name: "moe_gate_put", Op: "moe_gate_put", Ins: []ir.Type{f32(57), i32(57)}, Fill: []Fill{{"normal", 1}, idx},
				Attrs: ir.Attrs{"expert": 4, "rows": 40, "experts": 6}},
			Case{Name: "moe_scale_rows", Op: "moe_scale_rows", Ins: []ir.Type{f32(57, 33), f32(57)}},
			Case{Name: "moe_row_dot", Op: "moe_row_dot", Ins: []ir.Type{f32(57, 33), f32(57, 33)}},
		)
		cs = append(cs, routeCases()...)
		cs = append(cs, ffnCases()...)
		return cs
	}
}

// routeCases cover each gate kind and router activation once, with a
// capacity that drops tokens, and both auxiliary terms.
func routeCases() []Case {
	const T, E, K, C = 300, 6, 2, 80
	S := ir.MoESlots(T, E, K, C)
	h, tau := f32(T, E), Fill{Kind: "positive"}
	var cs []Case
	for _, v := range []struct {
		gate, act string
		renorm    bool
	}{{"topk_softmax", "none", false}, {"softmax_topk", "sigmoid", false}, {"softmax_topk", "tanh", true}, {"dense", "relu", false}} {
		k := K
		if v.gate == "dense" {
			k = E
		}
		gate := ir.Attrs{"k": k, "act": v.act, "gate": v.gate, "renormalize": v.renorm}
		aux := ir.Attrs{"k": k, "act": v.act, "load_balance": 0.01, "z_loss": 0.001}
		route := ir.Attrs{"k": k, "act": v.act, "gate": v.gate, "renormalize": v.renorm, "capacity": C, "load_balance": 0.01, "z_loss": 0.001, "aux": true}
		sl := ir.MoESlots(T, E, k, C)
		n := v.gate + " " + v.act
		cs = append(cs,
			Case{Name: "moe_gate " + n, Op: "moe_gate", Ins: []ir.Type{h, scalarF}, Fill: []Fill{{"normal", 1}, tau}, Attrs: gate, Tol: 1e-5},
			Case{Name: "moe_gate_grad " + n, Op: "moe_gate_grad", Ins: []ir.Type{h, h, scalarF}, Fill: []Fill{{"normal", 1}, {"normal", 1}, tau}, Attrs: gate, Tol: 1e-5},
			Case{Name: "moe_aux " + n, Op: "moe_aux", Ins: []ir.Type{h, scalarF}, Fill: []Fill{{"normal", 1}, tau}, Attrs: aux, Tol: 1e-5},
			Case{Name: "moe_aux_grad " + n, Op: "moe_aux_grad", Ins: []ir.Type{scalarF, h, scalarF}, Fill: []Fill{{Kind: "one"}, {"normal", 1}, tau}, Attrs: aux, Tol: 1e-5},
			Case{Name: "moe_route " + n, Op: "moe_route", Ins: []ir.Type{h, scalarF}, Fill: []Fill{{"normal", 1}, tau}, Attrs: route, Tol: 1e-5},
			Case{Name: "moe_route_grad " + n, Op: "moe_route_grad", Ins: []ir.Type{f32(sl), h, scalarF, i32(sl), i32(T, k), scalarF},
				Fill: []Fill{{"normal", 1}, {"normal", 1}, tau, {"labels", float64(T)}, {"labels", float64(sl)}, {Kind: "one"}}, Attrs: route, Tol: 1e-5},
		)
	}
	sel := ir.Attrs{"k": K, "act": "none", "capacity": C}
	cs = append(cs,
		Case{Name: "moe_dispatch", Op: "moe_dispatch", Ins: []ir.Type{h}, Attrs: ir.Attrs{"k": K, "act": "none", "capacity": C, "expert": 2}},
		Case{Name: "moe_stats", Op: "moe_stats", Ins: []ir.Type{h}, Attrs: sel},
		Case{Name: "moe_route_grad no aux", Op: "moe_route_grad", Ins: []ir.Type{f32(S), h, scalarF, i32(S), i32(T, K)},
			Fill:  []Fill{{"normal", 1}, {"normal", 1}, tau, {"labels", float64(T)}, {"labels", float64(S)}},
			Attrs: ir.Attrs{"k": K, "act": "gelu", "gate": "topk_softmax", "capacity": C}, Tol: 1e-5},
	)
	return cs
}

// ffnCases: 3 experts of 20 slots each in 70 (a padded tail), a few -1
// tokens in perm and the token slots; then sizes that divide no tile with
// an expert that gets no rows, every row in one of two experts, a larger
// layer, and each tile of the expert products forced. The FFN tolerances
// (1e-5) cover sums in another order than the CPU's blocked GEMM.
func ffnCases() []Case {
	const T, S, E, d, H = 40, 70, 3, 16, 24
	perm, off := Fill{"labels", T}, Fill{"ramp", 20}
	var cs []Case
	for _, act := range []string{"relu", "gelu"} {
		cs = append(cs, ffnPair(act, act, T, S, E, d, H, off, act != "relu", nil, nil)...)
	}
	empty := func(used int) Fill { return Fill{"offsets", float64(used)} }
	cs = append(cs, ffnPair("tanh odd sizes, an empty expert", "tanh", 61, 113, 4, 21, 37, empty(101), true, nil, nil)...)
	cs = append(cs, ffnPair("relu odd sizes, an empty expert", "relu", 61, 113, 4, 21, 37, empty(101), true, nil, nil)...)
	cs = append(cs, ffnPair("sigmoid one expert takes all", "sigmoid", 50, 90, 2, 24, 40, empty(87), true, nil, nil)...)
	cs = append(cs, ffnPair("gelu 512 tokens", "gelu", 512, 1024, 4, 96, 160, empty(1000), true, nil, nil)...)
	t := func(i int) []int {
		return []int{128, 128, 8, 8, 8, 64, 64, 16, 4, 4, 64, 16, 16, 4, 1, 32, 32, 16, 2, 2}[5*i : 5*i+5]
	}
	cs = append(cs, ffnPair("gelu tiles a", "gelu", 150, 300, 3, 40, 72, empty(290), true,
		ir.Attrs{"variant": "tiled", "tile_up": t(0), "tile_down": t(1)},
		ir.Attrs{"variant": "tiled", "tile_dz": t(0), "tile_dx": t(1), "tile_dw1": t(2), "tile_dw2": t(3)})...)
	cs = append(cs, ffnPair("relu tiles b", "relu", 150, 300, 3, 40, 72, empty(290), true,
		ir.Attrs{"variant": "tiled", "tile_up": t(2), "tile_down": t(0)},
		ir.Attrs{"variant": "tiled", "tile_dz": t(2), "tile_dx": t(0), "tile_dw1": t(0), "tile_dw2": t(1)})...)
	slots := Fill{"labels", S}
	cs = append(cs,
		Case{Name: "moe_combine", Op: "moe_combine", Ins: []ir.Type{f32(S, d), i32(T, 2), f32(S)}, Fill: []Fill{{"normal", 1}, slots}},
		Case{Name: "moe_combine unweighted", Op: "moe_combine", Ins: []ir.Type{f32(S, d), i32(T, 2)}, Fill: []Fill{{"normal", 1}, slots}},
		Case{Name: "moe_combine_grad", Op: "moe_combine_grad", Ins: []ir.Type{f32(T, d), f32(S, d), f32(S), i32(S)},
			Fill: []Fill{{"normal", 1}, {"normal", 1}, {"normal", 1}, perm}},
	)
	return cs
}

// ffnPair is a moe_ffn case and its moe_ffn_grad case: T tokens, S slots,
// E experts of widths d and H, offsets drawn by off, dx the attribute of
// the gradient, fwd and bwd the cuda launch choices (nil: the generator's).
func ffnPair(name, act string, T, S, E, d, H int, off Fill, dx bool, fwd, bwd ir.Attrs) []Case {
	rep := func(t ir.Type, n int) []ir.Type {
		out := make([]ir.Type, n)
		for i := range out {
			out[i] = t
		}
		return out
	}
	weights := append(append(append(rep(f32(d, H), E), rep(f32(H), E)...), rep(f32(H, d), E)...), rep(f32(d), E)...)
	a := ir.Attrs{"experts": E, "act": act}
	ffn := Case{Name: "moe_ffn " + name, Op: "moe_ffn", Ins: append([]ir.Type{f32(T, d), i32(S), i32(E + 1)}, weights...),
		Fill: []Fill{{"normal", 1}, {"labels", float64(T)}, off}, Attrs: a, Tol: 1e-5, Launch: fwd}
	gi := []ir.Type{f32(S, d), f32(S, d)}
	if ir.MoEFFNKeepsPre(act) {
		gi = append(gi, f32(S, H))
	}
	gi = append(append(append(gi, f32(S, H), i32(E+1)), rep(f32(d, H), E)...), rep(f32(H, d), E)...)
	fill := make([]Fill, len(gi)-2*E)
	for i := range fill {
		fill[i] = Fill{"normal", 1}
	}
	fill[len(fill)-1] = off
	grad := Case{Name: "moe_ffn_grad " + name, Op: "moe_ffn_grad", Ins: gi, Fill: fill,
		Attrs: ir.Attrs{"experts": E, "act": act, "dx": dx}, Tol: 1e-5, Launch: bwd}
	return []Case{ffn, grad}
}

// fillOffsets draws Fill{"offsets", U} into the E+1 offsets v: 0 to U (the
// slots past U are the padded tail) in random expert sizes, one expert, at
// random, given no rows (with two experts the other takes every row). It
// reports whether fl is such a fill.
func fillOffsets(fl Fill, r *rand.Rand, v []int32) bool {
	if fl.Kind != "offsets" {
		return false
	}
	n, used := len(v)-1, int32(fl.Arg)
	v[0] = 0
	if n == 1 {
		v[1] = used
		return true
	}
	cuts := []int32{0, used} // n-1 experts with rows between n-2 random cuts
	for range n - 2 {
		cuts = append(cuts, int32(r.IntN(int(used)+1)))
	}
	slices.Sort(cuts)
	empty, k := r.IntN(n), 0
	for e := 0; e < n; e++ {
		v[e+1] = v[e]
		if e != empty {
			v[e+1] += cuts[k+1] - cuts[k]
			k++
		}
	}
	return true
}
