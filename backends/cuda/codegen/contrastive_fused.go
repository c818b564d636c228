package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// contrastive_xent_fused, tiled like the CPU backend's fused kernel: the
// N×N similarity matrix is streamed in 64×64 tiles (contrastive_tiled.go)
// with an online log-sum-exp and recomputed in the backward, so scratch is
// O(N·d) (the unit rows, the split partial gradients) plus O(N) row state:
//
//	ex_l2_normalize            za, zb                       (normalize)
//	ex_ctrf_prep               1/τ_i, G_i,p(i), label check
//	ex_ctrf_thresh             thr_i                        (hard_k)
//	ex_ctrf_fwd                row state per column split
//	ex_ctrf_rows, ex_sum_i32,  lse_i, the row terms, V,
//	ex_rows_final              loss = Σ terms / V (fixed tree order)
//	ex_ctrf_bwd_sym            da (one tower: W = dS + dSᵀ)
//	ex_ctrf_bwd_rows, _cols    da, db (two towers)
//	ex_ctrf_sum, ex_ctrf_dtau  the splits added in order
//	ex_l2_normalize_grad       in place on da, db           (normalize)
//
// Every variant of the op is tiled, hard negatives included (a radix
// select per row, see ex_ctrf_thresh); nothing falls back to a
// materialised matrix.
func init() {
	register("contrastive_xent_fused", genContrastiveFused)
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		R := plan.Buffers[k.Ins[0]].Type.Shape[0]
		return ir.Attrs{"variant": "tiled", "tile": []int{ctrTile, ctrTile, ctrBK}, "splits": ctrSplits(R),
			"block": blockThreads, "grid": max(ctrTiles(R), 1)}
	}, "contrastive_xent_fused")
}

// The tile: 64 rows against 64 columns in 16-deep slabs, 4x4 a thread.
const (
	ctrTile = 64
	ctrBK   = 16
	// ctrMaxSplits bounds the column splits (and so the partial gradients
	// in scratch, splits·N·d floats).
	ctrMaxSplits = 8
	// ctrTargetBlocks: about two blocks per SM of a 132-SM H100.
	ctrTargetBlocks = 264
)

func ctrTiles(rows int) int { return (rows + ctrTile - 1) / ctrTile }

// ctrSplits cuts the column tiles into splits when there are too few row
// tiles to fill the GPU: each (row tile, split) block writes its own
// partial state, added afterwards in split order.
func ctrSplits(rows int) int {
	t := ctrTiles(rows)
	if t == 0 {
		return 1
	}
	return max(min((ctrTargetBlocks+t-1)/t, t, ctrMaxSplits), 1)
}

func genContrastiveFused(g *gen) error {
	at := g.attrs()
	lay := ir.ContrastiveLayout(at)
	obj, ok := contrastiveObjectives[at.Str("objective", "")]
	if !ok {
		return fmt.Errorf("unknown contrastive objective %q", at.Str("objective", ""))
	}
	la := g.launchAttrs()
	if v := la.Str("variant", "tiled"); v != "tiled" {
		return fmt.Errorf("unknown launch variant %q for contrastive_xent_fused (want tiled)", v)
	}
	if t := la.Ints("tile"); len(t) > 0 && (len(t) != 3 || t[0] != ctrTile || t[1] != ctrTile || t[2] != ctrBK) {
		return fmt.Errorf("launch tile %v for contrastive_xent_fused: the kernels are compiled for %dx%dx%d", t, ctrTile, ctrTile, ctrBK)
	}
	g.use("contrastive") // ex_l2_normalize(_grad), ex_sum_i32
	g.use("loss")        // ex_rows_final
	g.use("contrastive_tiled")
	at0 := g.inType(lay.A)
	R, d := at0.Shape[0], at0.Shape[1]
	splits := la.Int("splits", ctrSplits(R))
	if tiles := ctrTiles(R); splits < 1 || (R > 0 && splits > tiles) {
		return fmt.Errorf("launch splits %d for contrastive_xent_fused: want 1 to %d (the column tiles)", splits, max(tiles, 1))
	}
	if err := g.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;")); err != nil {
		return err
	}
	fill := func(y Arg, n int64) {
		if n > 0 {
			g.emit("ex_fill", dim(streamChoice(n).Int("grid", 1)), dim(blockThreads), y, f32Arg(0), i64Arg(n))
		}
	}
	if lay.DB < 0 && lay.DTau < 0 {
		fill(g.out(2), g.outType(2).Shape.Elems()) // the placeholder result
	}
	if R == 0 {
		fill(g.out(0), 1)
		return nil
	}
	n, nd := int64(R), int64(R)*int64(d)
	rows, dArg, sp := i64Arg(n), i64Arg(int64(d)), i32Arg(splits)
	dual, norm := lay.B >= 0, at.Bool("normalize", false)
	f32s := func(count int64) Arg { return scratchArg(g.reserve(4 * count)) }
	f64s := func(count int64) Arg { return scratchArg(g.reserve(8 * count)) }

	// Unit rows.
	za, zb := g.in(lay.A), g.in(lay.A)
	if dual {
		zb = g.in(lay.B)
	}
	if norm {
		za = f32s(nd)
		g.emit("ex_l2_normalize", rowGrid(R), dim(blockThreads), g.in(lay.A), za, rows, dArg)
		zb = za
		if dual {
			zb = f32s(nd)
			g.emit("ex_l2_normalize", rowGrid(R), dim(blockThreads), g.in(lay.B), zb, rows, dArg)
		}
	}

	// Row state: 1/τ, the hard-negative threshold, the guide's positive.
	inv, thr, gpos := f32s(n), f32s(n), f32s(n)
	tauIn, tauMode := inv, 0 // tauIn is never read in mode 0
	if lay.InvTau >= 0 {
		tauIn, tauMode = g.in(lay.InvTau), 1
		if g.inType(lay.InvTau).Rank() == 1 {
			tauMode = 2
		}
	}
	guided := lay.GuideA >= 0
	ga, gb, dg := za, za, int64(0) // never read unless guided
	if guided {
		ga, gb, dg = g.in(lay.GuideA), g.in(lay.GuideA), int64(g.inType(lay.GuideA).Shape[1])
		if lay.GuideB >= 0 {
			gb = g.in(lay.GuideB)
		}
	}
	labels := inv // never read unless supcon
	if lay.Labels >= 0 {
		labels = g.in(lay.Labels)
	}
	g.emit("ex_ctrf_prep", rowGrid(R), dim(blockThreads), tauIn, i32Arg(tauMode), f32Arg(float32(at.Float("inv_temperature", 1))), inv, thr,
		ga, gb, i64Arg(dg), i32Arg(b2i(guided)), gpos, labels, i32Arg(at.Int("classes", 0)), i32Arg(obj), statusArg(), g.code(ReasonLabel), rows)
	if k := at.Int("hard_k", 0); k > 0 && obj != contrastiveObjectives["supcon"] {
		g.emit("ex_ctrf_thresh", dim((R+15)/16), dim(blockThreads), za, zb, ga, gb, i64Arg(dg), gpos, thr, rows, dArg,
			i32Arg(obj), i32Arg(b2i(guided)), i64Arg(int64(k)))
	}

	// Forward.
	tiles := ctrTiles(R)
	grid := dim2(tiles, splits)
	ns := n * int64(splits)
	mst, sst, pst, cst := f32s(ns), f64s(ns), f64s(ns), f32s(ns)
	g.emit("ex_ctrf_fwd", grid, dim(blockThreads), za, zb, ga, gb, i64Arg(dg), inv, thr, gpos, labels, mst, sst, pst, cst,
		rows, dArg, i32Arg(obj), i32Arg(b2i(guided)), sp)
	lse, cnt, hit, valid, partial := f32s(n), f32s(n), f32s(n), f32s(1), f64s(n)
	g.emit("ex_ctrf_rows", dim(streamChoice(n).Int("grid", 1)), dim(blockThreads), mst, sst, pst, cst, inv, lse, cnt, hit, partial, rows, sp)
	g.emit("ex_sum_i32", dim(1), dim(blockThreads), hit, valid, rows)
	g.emit("ex_rows_final", dim(1), dim(blockThreads), partial, valid, g.out(0), rows)

	// Backward: the gradients of the unit rows, per split.
	dtau := f64s(ns)
	bwd := func(entry string, x, y, gx, gy, dst Arg) {
		if splits > 1 {
			part := f32s(nd * int64(splits))
			g.emit(entry, grid, dim(blockThreads), x, y, gx, gy, i64Arg(dg), inv, thr, gpos, labels, lse, cnt, hit, g.in(lay.DLoss), valid,
				part, dtau, rows, dArg, i32Arg(obj), i32Arg(b2i(guided)), sp)
			g.emit("ex_ctrf_sum", dim(streamChoice(nd).Int("grid", 1)), dim(blockThreads), part, dst, i64Arg(nd), sp)
			return
		}
		g.emit(entry, grid, dim(blockThreads), x, y, gx, gy, i64Arg(dg), inv, thr, gpos, labels, lse, cnt, hit, g.in(lay.DLoss), valid,
			dst, dtau, rows, dArg, i32Arg(obj), i32Arg(b2i(guided)), sp)
	}
	if dual {
		bwd("ex_ctrf_bwd_rows", za, zb, ga, gb, g.out(lay.DA))
		bwd("ex_ctrf_bwd_cols", zb, za, gb, ga, g.out(lay.DB))
	} else {
		bwd("ex_ctrf_bwd_sym", za, za, ga, ga, g.out(lay.DA))
	}
	if lay.DTau >= 0 {
		g.emit("ex_ctrf_dtau", dim(streamChoice(n).Int("grid", 1)), dim(blockThreads), dtau, g.out(lay.DTau), rows, sp)
	}
	if norm {
		g.emit("ex_l2_normalize_grad", rowGrid(R), dim(blockThreads), g.out(lay.DA), g.in(lay.A), g.out(lay.DA), rows, dArg)
		if dual {
			g.emit("ex_l2_normalize_grad", rowGrid(R), dim(blockThreads), g.out(lay.DB), g.in(lay.B), g.out(lay.DB), rows, dArg)
		}
	}
	return nil
}
