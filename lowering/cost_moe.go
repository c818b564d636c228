package lowering

import "github.com/expc-dev/expc/ir"

// Cost rows of the mixture-of-experts ops (ir/optable_moe.go) and of the
// sequence-model ops (ir/optable_seq.go). A fused MoE kernel is charged for
// every routing slot it has room for (T·k, or E·capacity if smaller): the
// expert FFNs run on the routed tokens only, with no padding.
func init() {
	costTable["moe_gate"] = perArgElem(12)      // act, top-k, exp, normalise
	costTable["moe_gate_grad"] = perArgElem(12) // recomputes the gate
	costTable["moe_dispatch"] = perArgElem(4)   // top-k and a priority walk
	costTable["moe_stats"] = perArgElem(4)
	costTable["moe_aux"] = perArgElem(14) // softmax for P, logsumexp for the z-loss
	costTable["moe_aux_grad"] = perArgElem(18)
	costTable["moe_gather"] = perResultElem(0)
	costTable["moe_scatter"] = perArgElem(1)
	costTable["moe_gate_take"] = perResultElem(0)
	costTable["moe_gate_put"] = perArgElem(1)
	costTable["moe_scale_rows"] = perResultElem(1)
	costTable["moe_row_dot"] = perArgElem(2)
	costTable["anneal"] = fixed(10)
	costTable["moe_route"] = perArgElem(30) // gate, aux and the permutation in one pass
	costTable["moe_route_grad"] = func(args, _ []ir.Type, _ ir.Attrs) int64 { return 30 * args[1].Shape.Elems() }
	costTable["moe_ffn"] = moeFFNCost
	costTable["moe_ffn_grad"] = moeFFNGradCost
	costTable["moe_combine"] = func(args, results []ir.Type, _ ir.Attrs) int64 {
		return 2 * results[0].Shape.Elems() * int64(args[1].Shape[1])
	}
	costTable["moe_combine_grad"] = func(_, results []ir.Type, _ ir.Attrs) int64 { return 3 * results[0].Shape.Elems() }

	costTable["token_ids"] = perResultElem(0)
	costTable["embed"] = perResultElem(1)
	costTable["embed_grad"] = perArgElem(2)
	costTable["layer_norm"] = perArgElem(8)
	costTable["layer_norm_grad"] = perArgElem(12)
	costTable["attention"] = attentionCost(2)
	costTable["attention_grad"] = attentionCost(5)
	costTable["slice_cols"] = perResultElem(0)
	costTable["pad_cols"] = perResultElem(0)
	costTable["sum_all"] = perArgElem(1)
	costTable["broadcast_scalar"] = perResultElem(0)
	costTable["mixture_nll"] = perArgElem(20) // a log-density and a log-sum-exp per entry
	costTable["mixture_nll_grad"] = func(args, _ []ir.Type, _ ir.Attrs) int64 { return 24 * args[1].Shape.Elems() }
}

// moeFFNCost: two GEMMs per routed slot (S·d·H each, two FLOPs per
// multiply-add) plus the bias and activation per hidden unit.
func moeFFNCost(args, results []ir.Type, attrs ir.Attrs) int64 {
	s, d := int64(args[1].Shape[0]), int64(args[0].Shape[1])
	h := int64(results[len(results)-2].Shape[1])
	act := attrs.Str("act", "relu")
	return 4*s*d*h + s*h*(1+elementFLOPs[act]) + s*d
}

// moeFFNGradCost: the backward GEMMs (dA, dW2, dW1 and, with dx, dxp),
// the activation gradient and the bias sums.
func moeFFNGradCost(args, _ []ir.Type, attrs ir.Attrs) int64 {
	s, d := int64(args[0].Shape[0]), int64(args[0].Shape[1])
	h := int64(args[len(args)-1].Shape[0]) // W2_e is [H,d]
	gemms := int64(3)
	if attrs.Bool("dx", false) {
		gemms++
	}
	act := attrs.Str("act", "relu")
	return gemms*2*s*d*h + s*h*(1+elementFLOPs[act+"_grad"]) + s*d
}

// attentionCost charges per sequence and head passes·T²·dh multiply-adds
// (scores and the weighted sum forward; recomputed scores and three
// products backward) plus the softmax.
func attentionCost(passes int64) costFn {
	return func(args, _ []ir.Type, attrs ir.Attrs) int64 {
		q := args[len(args)-3]
		n, d := int64(q.Shape[0]), int64(q.Shape[1])
		t := int64(max(attrs.Int("seq", 1), 1))
		h := int64(max(attrs.Int("heads", 1), 1))
		return 2*passes*n*t*d + 6*n*t*h
	}
}
