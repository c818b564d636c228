package compiler

import "github.com/expc-dev/expc/ir"

// Gradient rules of the mixture-of-experts and sequence ops. Routing
// (which experts, which tokens) is piecewise constant in the logits: the
// gradient flows through the gate weights only. The temperature is a
// schedule, not a trained value, so no gradient flows to it; nor to the
// regression target that mixture_nll reads from the data.
func init() {
	vjpRules["moe_gate"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("moe_gate_grad", in.Attrs.Clone(), "d", dy, in.Args[0], in.Args[1]), nil}
	}
	vjpRules["moe_aux"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("moe_aux_grad", in.Attrs.Clone(), "d", dy, in.Args[0], in.Args[1]), nil}
	}
	vjpRules["moe_gather"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("moe_scatter", ir.Attrs{"rows": in.Args[0].Type.Shape[0]}, "d", dy, in.Args[1]), nil}
	}
	vjpRules["moe_scatter"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("moe_gather", nil, "d", dy, in.Args[1]), nil}
	}
	vjpRules["moe_gate_take"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		g := in.Args[0].Type
		attrs := ir.Attrs{"expert": in.Attrs.Int("expert", 0), "rows": g.Shape[0], "experts": g.Shape[1]}
		return []*ir.Value{b.V("moe_gate_put", attrs, "d", dy, in.Args[1]), nil}
	}
	vjpRules["moe_gate_put"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("moe_gate_take", ir.Attrs{"expert": in.Attrs.Int("expert", 0)}, "d", dy, in.Args[1]), nil}
	}
	vjpRules["moe_scale_rows"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		y, w := in.Args[0], in.Args[1]
		return []*ir.Value{b.V("moe_scale_rows", nil, "d", dy, w), b.V("moe_row_dot", nil, "d", dy, y)}
	}
	vjpRules["moe_row_dot"] = func(b *ir.Builder, in *ir.Instr, dv *ir.Value) []*ir.Value {
		x, y := in.Args[0], in.Args[1]
		return []*ir.Value{b.V("moe_scale_rows", nil, "d", y, dv), b.V("moe_scale_rows", nil, "d", x, dv)}
	}
	vjpRules["embed"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		table, pos := in.Args[1].Type, in.Args[2].Type
		g := b.Must("embed_grad", []*ir.Value{dy, in.Args[0]}, ir.Attrs{"vocab": table.Shape[0], "seq": pos.Shape[0]}, "d", "d")
		return []*ir.Value{nil, g.Results[0], g.Results[1]}
	}
	vjpRules["layer_norm"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		g := b.Must("layer_norm_grad", []*ir.Value{dy, in.Args[0], in.Args[1]}, in.Attrs.Clone(), "d", "d", "d")
		return g.Results
	}
	vjpRules["attention"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		g := b.Must("attention_grad", []*ir.Value{dy, in.Args[0], in.Args[1], in.Args[2]}, in.Attrs.Clone(), "d", "d", "d")
		return g.Results
	}
	vjpRules["slice_cols"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		attrs := ir.Attrs{"start": in.Attrs.Int("start", 0), "width": in.Args[0].Type.Shape[1]}
		return []*ir.Value{b.V("pad_cols", attrs, "d", dy)}
	}
	vjpRules["pad_cols"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		s := in.Attrs.Int("start", 0)
		return []*ir.Value{b.V("slice_cols", ir.Attrs{"start": s, "end": s + in.Args[0].Type.Shape[1]}, "d", dy)}
	}
	vjpRules["sum_all"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("broadcast_scalar", ir.Attrs{"shape": append([]int{}, in.Args[0].Type.Shape...)}, "d", dy)}
	}
	vjpRules["broadcast_scalar"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("sum_all", nil, "d", dy)}
	}
	vjpRules["mixture_nll"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		a := in.Args
		g := b.Must("mixture_nll_grad", []*ir.Value{dy, a[0], a[1], a[2], a[3], a[4]}, nil, "d", "d", "d")
		return []*ir.Value{g.Results[0], g.Results[1], g.Results[2], nil, nil}
	}
	// A constant has no operands: the gradient reaching it goes nowhere.
	// (The transformer's layer norm gains are fill(1) + g.)
	vjpRules["fill"] = func(*ir.Builder, *ir.Instr, *ir.Value) []*ir.Value { return nil }
	for op, why := range map[string]string{
		"moe_gate_grad":    "a gradient itself",
		"moe_aux_grad":     "a gradient itself",
		"moe_dispatch":     "routing: piecewise constant in the logits (integer token lists)",
		"moe_stats":        "a metric (counts of routed tokens)",
		"anneal":           "a schedule of the step counter, not a function of the parameters",
		"token_ids":        "integer token ids read from the data",
		"embed_grad":       "a gradient itself",
		"layer_norm_grad":  "a gradient itself",
		"attention_grad":   "a gradient itself",
		"mixture_nll_grad": "a gradient itself",
	} {
		NotDifferentiable[op] = why
	}
}
