package compiler

import (
	"math/rand/v2"

	"github.com/expc-dev/expc/ir"
)

// contrastiveGradCases are the finite-difference cases of the contrastive
// ops (see gradCases).
func contrastiveGradCases() []gradCase {
	m := ir.Tensor(ir.F32, 5, 7)
	// soft_xent's mask is drawn as positive weights and its positives as
	// non-negative ones; both are constants of the loss.
	softDraw := func(r *rand.Rand, arg int) float64 {
		switch arg {
		case 1:
			return 0.5 + r.Float64()
		case 2:
			return r.Float64()
		}
		return 2 * r.NormFloat64()
	}
	return []gradCase{
		{name: "l2_normalize", op: "l2_normalize", args: []ir.Type{m}, draw: normal},
		{name: "row_scale/rows", op: "row_scale", args: []ir.Type{m, ir.Tensor(ir.F32, 5)}, draw: normal},
		{name: "row_scale/scalar", op: "row_scale", args: []ir.Type{m, ir.Scalar(ir.F32)}, draw: normal},
		{name: "soft_xent", op: "soft_xent", args: []ir.Type{ir.Tensor(ir.F32, 6, 5), ir.Tensor(ir.F32, 6, 5), ir.Tensor(ir.F32, 6, 5)},
			draw: softDraw, constArgs: []int{1, 2}},
		{name: "gather", op: "gather", args: []ir.Type{ir.Tensor(ir.F32, 9), ir.Tensor(ir.I32, 6)}, draw: normal},
		{name: "scatter_add", op: "scatter_add", args: []ir.Type{ir.Tensor(ir.F32, 6), ir.Tensor(ir.I32, 6)},
			attrs: ir.Attrs{"size": 8}, draw: normal},
	}
}
