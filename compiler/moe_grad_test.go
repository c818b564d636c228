package compiler

import (
	"math/rand/v2"

	"github.com/expc-dev/expc/ir"
)

// moeGradCases are the finite-difference cases of the mixture-of-experts
// and sequence ops (TestGradientsMatchFiniteDifferences runs them). Integer
// operands are drawn by the harness in [0, n−1) with a −1 first, which
// exercises the padding index of every gather and scatter.
func moeGradCases() []gradCase {
	f := func(dims ...int) ir.Type { return ir.Tensor(ir.F32, dims...) }
	idx := func(n int) ir.Type { return ir.Tensor(ir.I32, n) }
	// Router logits are spread out so that no perturbation swaps two of
	// them across the top-k boundary; the temperature stays positive.
	router := func(r *rand.Rand, arg int) float64 {
		if arg == 1 {
			return 0.5 + r.Float64()
		}
		return 2 * r.NormFloat64()
	}
	h, tau := f(6, 5), ir.Scalar(ir.F32)
	var cases []gradCase
	for _, g := range []struct {
		name  string
		attrs ir.Attrs
	}{
		{"topk_softmax", ir.Attrs{"k": 2, "gate": "topk_softmax"}},
		{"softmax_topk", ir.Attrs{"k": 2, "gate": "softmax_topk"}},
		{"softmax_topk/renormalize", ir.Attrs{"k": 3, "gate": "softmax_topk", "renormalize": true}},
		{"dense/sigmoid", ir.Attrs{"k": 5, "gate": "dense", "act": "sigmoid"}},
		{"top1/tanh", ir.Attrs{"k": 1, "gate": "topk_softmax", "act": "tanh"}},
	} {
		cases = append(cases, gradCase{name: "moe_gate/" + g.name, op: "moe_gate", args: []ir.Type{h, tau},
			attrs: g.attrs, draw: router, constArgs: []int{1}})
	}
	cases = append(cases,
		gradCase{name: "moe_aux", op: "moe_aux", args: []ir.Type{h, tau}, draw: router, constArgs: []int{1},
			attrs: ir.Attrs{"k": 2, "act": "tanh", "load_balance": 0.3, "z_loss": 0.1}},
		gradCase{name: "moe_gather", op: "moe_gather", args: []ir.Type{f(5, 4), idx(4)}, draw: normal},
		gradCase{name: "moe_scatter", op: "moe_scatter", args: []ir.Type{f(4, 3), idx(4)}, attrs: ir.Attrs{"rows": 5}, draw: normal},
		gradCase{name: "moe_gate_take", op: "moe_gate_take", args: []ir.Type{f(5, 3), idx(4)}, attrs: ir.Attrs{"expert": 1}, draw: normal},
		gradCase{name: "moe_gate_put", op: "moe_gate_put", args: []ir.Type{f(4), idx(4)},
			attrs: ir.Attrs{"expert": 2, "rows": 5, "experts": 3}, draw: normal},
		gradCase{name: "moe_scale_rows", op: "moe_scale_rows", args: []ir.Type{f(4, 3), f(4)}, draw: normal},
		gradCase{name: "moe_row_dot", op: "moe_row_dot", args: []ir.Type{f(4, 3), f(4, 3)}, draw: normal},
		gradCase{name: "embed", op: "embed", args: []ir.Type{idx(6), f(7, 3), f(3, 3)}, draw: normal},
		gradCase{name: "layer_norm", op: "layer_norm", args: []ir.Type{f(4, 6), f(6), f(6)}, attrs: ir.Attrs{"eps": 1e-3}, draw: normal},
		gradCase{name: "attention/causal", op: "attention", args: []ir.Type{f(6, 4), f(6, 4), f(6, 4)},
			attrs: ir.Attrs{"heads": 2, "seq": 3, "causal": true}, draw: normal},
		gradCase{name: "attention", op: "attention", args: []ir.Type{f(8, 6), f(8, 6), f(8, 6)},
			attrs: ir.Attrs{"heads": 3, "seq": 4}, draw: normal},
		gradCase{name: "sum_all", op: "sum_all", args: []ir.Type{f(4, 3)}, draw: normal},
		gradCase{name: "broadcast_scalar", op: "broadcast_scalar", args: []ir.Type{ir.Scalar(ir.F32)}, attrs: ir.Attrs{"shape": []int{2, 3}}, draw: normal},
		gradCase{name: "slice_cols", op: "slice_cols", args: []ir.Type{f(4, 5)}, attrs: ir.Attrs{"start": 1, "end": 3}, draw: normal},
		gradCase{name: "pad_cols", op: "pad_cols", args: []ir.Type{f(4, 2)}, attrs: ir.Attrs{"start": 1, "width": 5}, draw: normal},
		// G is a gate (positive weights); the target (operand 3) is data.
		gradCase{name: "mixture_nll", op: "mixture_nll", args: []ir.Type{f(5, 3), f(5, 3), f(3), f(5, 1), idx(5)},
			draw: func(r *rand.Rand, arg int) float64 {
				if arg == 0 {
					return 0.1 + r.Float64()
				}
				return r.NormFloat64()
			}, constArgs: []int{3}},
	)
	return cases
}
