package ir

// moeOps adds every mixture-of-experts and sequence op to the round-trip
// module (see testModule): x is f32[4,6], y i32[4], step the i32 step.
func moeOps(b *Builder, x, y, step *Value) {
	// 4 tokens, 3 experts, top-2, capacity 3, expert FFN 6 -> 5 -> 6.
	wr := b.V("fill", Attrs{"shape": []int{6, 3}, "value": 0.25}, "wr")
	h := b.V("matmul", nil, "router", x, wr)
	tau := b.V("anneal", Attrs{"kind": "cosine", "start": 2.0, "end": 0.5, "steps": 100}, "tau", step)
	gate := Attrs{"k": 2, "gate": "softmax_topk", "renormalize": true, "act": "sigmoid"}
	g := b.V("moe_gate", gate, "G", h, tau)
	b.V("moe_gate_grad", gate, "dh", g, h, tau)
	idx := b.V("moe_dispatch", Attrs{"k": 2, "expert": 1, "capacity": 3}, "idx", h)
	b.Must("moe_stats", []*Value{h}, Attrs{"k": 2, "capacity": 3}, "load", "dropped")
	aux := Attrs{"k": 2, "load_balance": 0.01, "z_loss": 0.001}
	a := b.V("moe_aux", aux, "aux", h, tau)
	b.V("moe_aux_grad", aux, "daux", a, h, tau)
	xe := b.V("moe_gather", nil, "xe", x, idx)
	b.V("moe_scatter", Attrs{"rows": 4}, "back", xe, idx)
	ge := b.V("moe_gate_take", Attrs{"expert": 1}, "ge", g, idx)
	b.V("moe_gate_put", Attrs{"expert": 1, "rows": 4, "experts": 3}, "dG", ge, idx)
	ye := b.V("moe_scale_rows", nil, "ye", xe, ge)
	b.V("moe_row_dot", nil, "dge", ye, xe)

	route := Attrs{"k": 2, "gate": "topk_softmax", "capacity": 3, "load_balance": 0.01, "aux": true}
	r := b.Must("moe_route", []*Value{h, tau}, route, "perm", "offsets", "w", "slots", "load", "dropped", "aux")
	perm, off, w, slots := r.Results[0], r.Results[1], r.Results[2], r.Results[3]
	b.V("moe_route_grad", route, "dh", w, h, tau, perm, slots, r.Results[6])
	var ws []*Value
	for _, shape := range [][]int{{6, 5}, {5}, {5, 6}, {6}} {
		for range 3 {
			ws = append(ws, b.V("fill", Attrs{"shape": shape, "value": 0.1}, "w"))
		}
	}
	ffn := b.Must("moe_ffn", append([]*Value{x, perm, off}, ws...), Attrs{"experts": 3, "act": "gelu"}, "xp", "z", "a", "y")
	xp, z, act, yy := ffn.Results[0], ffn.Results[1], ffn.Results[2], ffn.Results[3]
	out := b.V("moe_combine", nil, "out", yy, slots, w)
	cg := b.Must("moe_combine_grad", []*Value{out, yy, w, perm}, nil, "dy", "dw")
	gargs := append([]*Value{cg.Results[0], xp, z, act, off}, ws[0:3]...)
	gargs = append(gargs, ws[6:9]...)
	names := []string{"dxp", "dz"}
	for range 12 {
		names = append(names, "dw")
	}
	gr := b.Must("moe_ffn_grad", gargs, Attrs{"experts": 3, "act": "gelu", "dx": true}, names...)
	b.V("moe_combine", nil, "dx", gr.Results[0], slots)

	// A token model: x holds 4 sequences of 6 tokens (inputs and targets of T = 5).
	ids := b.V("token_ids", nil, "ids", x)
	tgt := b.V("token_ids", Attrs{"shift": 1}, "targets", x, y)
	table := b.V("fill", Attrs{"shape": []int{7, 4}, "value": 0.5}, "table")
	pos := b.V("fill", Attrs{"shape": []int{5, 4}, "value": 0.5}, "pos")
	e := b.V("embed", nil, "emb", ids, table, pos)
	b.Must("embed_grad", []*Value{e, tgt}, Attrs{"vocab": 7, "seq": 5}, "dtable", "dpos")
	gam := b.V("fill", Attrs{"shape": []int{4}, "value": 1.0}, "gamma")
	ln := b.V("layer_norm", Attrs{"eps": 1e-05}, "ln", e, gam, gam)
	b.Must("layer_norm_grad", []*Value{ln, e, gam}, nil, "dln", "dgamma", "dbeta")
	attn := Attrs{"heads": 2, "seq": 5, "causal": true}
	o := b.V("attention", attn, "attn", ln, ln, ln)
	b.Must("attention_grad", []*Value{o, ln, ln, ln}, attn, "dq", "dk", "dv")
	in := b.V("slice_cols", Attrs{"start": 0, "end": 5}, "in", x)
	target := b.V("slice_cols", Attrs{"start": 5, "end": 6}, "target", x)
	b.V("pad_cols", Attrs{"start": 0, "width": 6}, "din", in)
	total := b.V("sum_all", nil, "total", x)
	b.V("broadcast_scalar", Attrs{"shape": []int{4, 6}}, "dtotal", total)
	mu := b.V("fill", Attrs{"shape": []int{4, 3}, "value": 0.0}, "mu")
	lv := b.V("fill", Attrs{"shape": []int{3}, "value": 0.0}, "logvar")
	nll := b.V("mixture_nll", nil, "nll", g, mu, lv, target, y)
	b.Must("mixture_nll_grad", []*Value{nll, g, mu, lv, target, y}, nil, "dG", "dmu", "dlogvar")
}
