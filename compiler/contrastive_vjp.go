package compiler

import "github.com/expc-dev/expc/ir"

// Gradient rules of the contrastive ops (ir/optable_contrastive.go).
func init() {
	vjpRules["l2_normalize"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("l2_normalize_grad", nil, "d", dy, in.Args[0])}
	}
	// row_scale(x, s): dx = row_scale(dy, s), ds_i = Σ_j dy_ij x_ij (summed
	// again for a scalar s).
	vjpRules["row_scale"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		x, s := in.Args[0], in.Args[1]
		dx := b.V("row_scale", nil, "d", dy, s)
		if !needsGrad(s) {
			return []*ir.Value{dx, nil}
		}
		ds := b.V("reduce_sum", ir.Attrs{"axis": 1}, "d", b.V("mul", nil, "d", dy, x))
		if s.Type.Rank() == 0 {
			ds = b.V("reduce_sum", ir.Attrs{"axis": 0}, "d", ds)
		}
		return []*ir.Value{dx, ds}
	}
	// The mask and positives are constants of the loss: contrastive_mask
	// is not differentiable.
	vjpRules["soft_xent"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("soft_xent_grad", nil, "d", in.Args[0], in.Args[1], in.Args[2], dy), nil, nil}
	}
	vjpRules["gather"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		size := in.Args[0].Type.Shape[0]
		return []*ir.Value{b.V("scatter_add", ir.Attrs{"size": size}, "d", dy, in.Args[1]), nil}
	}
	vjpRules["scatter_add"] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("gather", nil, "d", dy, in.Args[1]), nil}
	}
	NotDifferentiable["l2_normalize_grad"] = "a gradient itself"
	NotDifferentiable["soft_xent_grad"] = "a gradient itself"
	NotDifferentiable["contrastive_mask"] = "a mask: piecewise constant in the similarities"
}

// needsGrad reports whether a gradient can flow into v: it is an f32
// function parameter or reaches one through differentiable ops. A
// temperature computed from the step number alone (lr_schedule) gets none,
// so no N×N product is emitted for it.
func needsGrad(v *ir.Value) bool {
	seen := map[*ir.Value]bool{}
	var walk func(v *ir.Value) bool
	walk = func(v *ir.Value) bool {
		if seen[v] {
			return false
		}
		seen[v] = true
		if v.Def == nil {
			return v.Type.DType == ir.F32
		}
		if !HasGradient(v.Def.Op) {
			return false
		}
		for _, a := range v.Def.Args {
			if walk(a) {
				return true
			}
		}
		return false
	}
	return walk(v)
}
