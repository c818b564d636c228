package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// contrastive_xent_fused, computed the way the unfused graph computes it
// (ir/interp's reference does the same), from the contrastive and GEMM
// kernels, with the N×N matrices in scratch:
//
//	za, zb = l2_normalize(a), l2_normalize(b)     (normalize; zb = za for one tower)
//	S      = za·zbᵀ;  G = ga·gbᵀ                  (guided)
//	M, P   = contrastive_mask(S, labels, G)
//	L      = S·invτ (per row);  loss, dL = soft_xent(L, M, P), soft_xent_grad(…, dloss)
//	dinvτ_i = Σ_j dL_ij·S_ij                      (want_dtau)
//	dS     = dL·invτ;  dza = dS·zb;  dzb = dSᵀ·za (one tower: dza += dzb)
//	da, db = l2_normalize_grad(dza, a), …         (normalize; else dza, dzb)
//
// It is the "materialized" variant: O(N²) scratch and several launches, not
// the CPU's tiled online log-sum-exp; a tiled kernel can replace it without
// changing the results beyond rounding.
func init() {
	addFamily("contrastive_fused", []string{"contrastive"}, `// ex_row_dot: out[r] = Σ_j A[r,j]·B[r,j] in float64.
extern "C" __global__ void __launch_bounds__(256) ex_row_dot(const float* A, const float* B, float* out, i64 rows, i64 cols) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  double s = 0.0;
  for (i64 j = lane; j < cols; j += 32) s += (double)A[r * cols + j] * (double)B[r * cols + j];
  s = ex_warp_sum_d(s);
  if (lane == 0) out[r] = (float)s;
}
`)
	register("contrastive_xent_fused", genContrastiveFused)
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		return ir.Attrs{"variant": "materialized"}
	}, "contrastive_xent_fused")
}

func genContrastiveFused(g *gen) error {
	at := g.attrs()
	lay := ir.ContrastiveLayout(at)
	obj, ok := contrastiveObjectives[at.Str("objective", "")]
	if !ok {
		return fmt.Errorf("unknown contrastive objective %q", at.Str("objective", ""))
	}
	if v := g.launchAttrs().Str("variant", "materialized"); v != "materialized" {
		return fmt.Errorf("unknown launch variant %q for contrastive_xent_fused (want materialized)", v)
	}
	g.use("contrastive_fused")
	g.use("loss")
	g.use("gemm")
	at0 := g.inType(lay.A)
	R, d := at0.Shape[0], at0.Shape[1]
	rows := i64Arg(int64(R))
	if err := g.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;")); err != nil {
		return err
	}
	fill := func(y Arg, n int64) {
		if n > 0 {
			g.emit("ex_fill", dim(streamChoice(n).Int("grid", 1)), dim(blockThreads), y, f32Arg(0), i64Arg(n))
		}
	}
	third := g.outType(2)
	if lay.DB < 0 && lay.DTau < 0 {
		fill(g.out(2), third.Shape.Elems()) // the placeholder result
	}
	if R == 0 {
		fill(g.out(0), 1)
		return nil
	}
	rd, rr := 4*int64(R)*int64(d), 4*int64(R)*int64(R)
	dual := lay.B >= 0
	norm := at.Bool("normalize", false)

	// Unit rows.
	za, zb := g.in(lay.A), g.in(lay.A)
	if dual {
		zb = g.in(lay.B)
	}
	if norm {
		za = scratchArg(g.reserve(rd))
		g.emit("ex_l2_normalize", rowGrid(R), dim(blockThreads), g.in(lay.A), za, rows, i64Arg(int64(d)))
		zb = za
		if dual {
			zb = scratchArg(g.reserve(rd))
			g.emit("ex_l2_normalize", rowGrid(R), dim(blockThreads), g.in(lay.B), zb, rows, i64Arg(int64(d)))
		}
	}
	nt := func(A, B, C Arg, k int) error { // C[R, R] = A·Bᵀ, A and B R x k
		return emitGemm(g, chooseGemmTile(R, R), false, true, 0, "none", A, B, C, C, R, R, k, k, k)
	}
	S := scratchArg(g.reserve(rr))
	if err := nt(za, zb, S, d); err != nil {
		return err
	}
	guide, labels := S, S // never read when absent
	if lay.GuideA >= 0 {
		ga, gb := g.in(lay.GuideA), g.in(lay.GuideA)
		if lay.GuideB >= 0 {
			gb = g.in(lay.GuideB)
		}
		guide = scratchArg(g.reserve(rr))
		if err := nt(ga, gb, guide, g.inType(lay.GuideA).Shape[1]); err != nil {
			return err
		}
	}
	if lay.Labels >= 0 {
		labels = g.in(lay.Labels)
	}
	M, P := scratchArg(g.reserve(rr)), scratchArg(g.reserve(rr))
	g.emit("ex_contrastive_mask", rowGrid(R), dim(blockThreads), S, labels, guide, M, P, rows, rows, i32Arg(obj),
		i64Arg(int64(at.Int("hard_k", 0))), i32Arg(b2i(lay.GuideA >= 0)), statusArg(), g.code(ReasonLabel))

	// Temperature: fixed (mode 0), a scalar operand (1) or one per row (2).
	tau, mode := S, 0
	if lay.InvTau >= 0 {
		tau, mode = g.in(lay.InvTau), 1
		if g.inType(lay.InvTau).Rank() == 1 {
			mode = 2
		}
	}
	const scaleEntry = "ex_ctr_row_scale"
	if err := g.entry(scaleEntry, streamEntry(scaleEntry, "const float* X, const float* T, float fixed, i32 mode, float* Y, i64 cols",
		"const float f = mode == 0 ? fixed : T[mode == 1 ? 0 : i / cols]; Y[i] = X[i] * f;")); err != nil {
		return err
	}
	nrr := int64(R) * int64(R)
	scale := func(x, y Arg) {
		g.emit(scaleEntry, dim(streamChoice(nrr).Int("grid", 1)), dim(blockThreads), x, tau, f32Arg(float32(at.Float("inv_temperature", 1))),
			i32Arg(mode), y, i64Arg(int64(R)), i64Arg(nrr))
	}
	L, dL := scratchArg(g.reserve(rr)), scratchArg(g.reserve(rr))
	scale(S, L)
	hit, valid, partial := scratchArg(g.reserve(4*int64(R))), scratchArg(g.reserve(4)), scratchArg(g.reserve(8*int64(R)))
	g.emit("ex_soft_xent_counts", rowGrid(R), dim(blockThreads), M, P, hit, rows, rows)
	g.emit("ex_sum_i32", dim(1), dim(blockThreads), hit, valid, rows)
	g.emit("ex_soft_xent_rows_grad", rowGrid(R), dim(blockThreads), L, M, P, hit, valid, g.in(lay.DLoss), dL, partial, rows, rows)
	g.emit("ex_rows_final", dim(1), dim(blockThreads), partial, valid, g.out(0), rows)
	if lay.DTau >= 0 {
		g.emit("ex_row_dot", rowGrid(R), dim(blockThreads), dL, S, g.out(lay.DTau), rows, rows)
	}
	scale(dL, dL) // dS

	// dza = dS·zb; dzb = dSᵀ·za.
	dza, dzb := scratchArg(g.reserve(rd)), scratchArg(g.reserve(rd))
	tile := chooseGemmTile(R, d)
	if err := emitGemm(g, tile, false, false, 0, "none", dL, zb, dza, dza, R, d, R, R, d); err != nil {
		return err
	}
	if err := emitGemm(g, tile, true, false, 0, "none", dL, za, dzb, dzb, R, d, R, R, d); err != nil {
		return err
	}
	nrd := int64(R) * int64(d)
	grid := dim(streamChoice(nrd).Int("grid", 1))
	if !dual {
		if err := g.entry("ex_ctr_add", streamEntry("ex_ctr_add", "const float* A, const float* B, float* Y", "Y[i] = A[i] + B[i];")); err != nil {
			return err
		}
		g.emit("ex_ctr_add", grid, dim(blockThreads), dza, dzb, dza, i64Arg(nrd))
	}
	if err := g.entry("ex_ctr_copy", streamEntry("ex_ctr_copy", "const float* X, float* Y", "Y[i] = X[i];")); err != nil {
		return err
	}
	out := func(dz, x, dst Arg) {
		if norm {
			g.emit("ex_l2_normalize_grad", rowGrid(R), dim(blockThreads), dz, x, dst, rows, i64Arg(int64(d)))
		} else {
			g.emit("ex_ctr_copy", grid, dim(blockThreads), dz, dst, i64Arg(nrd))
		}
	}
	out(dza, g.in(lay.A), g.out(lay.DA))
	if dual {
		out(dzb, g.in(lay.B), g.out(lay.DB))
	}
	return nil
}
