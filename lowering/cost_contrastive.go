package lowering

import "github.com/expc-dev/expc/ir"

// Cost rows of the contrastive ops (ir/optable_contrastive.go).
func init() {
	costTable["l2_normalize"] = perArgElem(3)      // square, sum, divide
	costTable["l2_normalize_grad"] = perArgElem(6) // two dots and an axpy per row
	costTable["row_scale"] = perResultElem(1)
	costTable["contrastive_mask"] = perArgElem(3)
	costTable["soft_xent"] = perArgElem(7) // max, exp, sum, positives
	costTable["soft_xent_grad"] = perArgElem(8)
	costTable["gather"] = perResultElem(1)
	costTable["scatter_add"] = perArgElem(1)
	costTable["contrastive_xent_fused"] = contrastiveFusedCost
}

// contrastiveFusedCost counts the work the tiled kernel does. With one
// tower the similarity matrix is symmetric, so each pair of blocks is
// computed once per pass: R²·d for the forward similarities and 3·R²·d for
// the backward (recomputed similarities and the two gradient products).
// Two towers need the whole matrix: 2·R²·d forward, 6·R²·d backward. Each
// similarity also costs about 24 FLOPs of exponentials and masking (two
// exponentials, forward and backward). Hard negatives add a pass that
// finds each row's threshold; a guide adds its own similarity products.
func contrastiveFusedCost(args, _ []ir.Type, attrs ir.Attrs) int64 {
	lay := ir.ContrastiveLayout(attrs)
	r, d := int64(args[lay.A].Shape[0]), int64(args[lay.A].Shape[1])
	passes := int64(2)
	if attrs.Int("hard_k", 0) > 0 {
		passes++
	}
	gemm := 4 * r * r * d
	if lay.B >= 0 {
		gemm *= 2
	}
	if attrs.Int("hard_k", 0) > 0 {
		gemm += gemm / 4
	}
	if lay.GuideA >= 0 {
		dg := int64(args[lay.GuideA].Shape[1])
		gemm += passes * r * r * dg
	}
	var norm int64
	if attrs.Bool("normalize", false) {
		norm = 9 * r * d
		if lay.B >= 0 {
			norm *= 2
		}
	}
	return gemm + 24*r*r + norm
}
