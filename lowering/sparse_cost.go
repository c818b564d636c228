package lowering

import "github.com/expc-dev/expc/ir"

// FLOP rows of the sparse training ops (see ir/optable_sparse.go).
func init() {
	// Choosing a mask ranks every weight: a selection over the layer.
	costTable["mask_update"] = perArgElem(20)
	costTable["masked_matmul"] = maskedMatmulCost
	costTable["masked_matmul_dw"] = maskedDWCost
}

// effectiveDensity is the fraction of a dense GEMM's multiply-adds a masked
// kernel performs: all of them for dense-with-mask, the mask's density
// otherwise.
func effectiveDensity(attrs ir.Attrs) float64 {
	if attrs.Str("kernel", "dense") == "dense" {
		return 1
	}
	return attrs.Float("density", 1)
}

// maskedMatmulCost is a GEMM's cost scaled by the effective density, plus
// the epilogue (and W ⊙ M for dense-with-mask).
func maskedMatmulCost(args, results []ir.Type, attrs ir.Attrs) int64 {
	m, k, n, err := ir.MatmulDims(args[0], args[1], false, attrs.Bool("transpose_b", false))
	if err != nil {
		return 0
	}
	flops := int64(2 * float64(m) * float64(k) * float64(n) * effectiveDensity(attrs))
	act := attrs.Str("act", "none")
	switch {
	case len(args) == 5 && args[4].Rank() == 1:
		flops += int64(m) * int64(n) * (1 + elementFLOPs[act])
	case len(args) == 5:
		flops += int64(m) * int64(n) * elementFLOPs[act+"_grad"]
	}
	if attrs.Str("kernel", "dense") == "dense" {
		flops += args[1].Shape.Elems()
	}
	return flops
}

// maskedDWCost is xᵀ·dy at the kept positions (all of them, then the mask
// multiply, for dense-with-mask).
func maskedDWCost(args, _ []ir.Type, attrs ir.Attrs) int64 {
	b, k, n := args[0].Shape[0], args[0].Shape[1], args[1].Shape[1]
	flops := int64(2 * float64(b) * float64(k) * float64(n) * effectiveDensity(attrs))
	if attrs.Str("kernel", "dense") == "dense" {
		flops += int64(k) * int64(n)
	}
	return flops
}
