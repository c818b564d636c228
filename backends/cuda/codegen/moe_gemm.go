package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// The expert products of moe_ffn and moe_ffn_grad: one tiled GEMM per expert
// over its rows [off[e], off[e+1]) of the permuted slots, with ex_gemm's
// tiling (gemm.go): BK-deep slabs of both operands staged in shared memory,
// zero-padded at the edges, a TM x TN register sub-tile per thread, the
// epilogue on the registers before the only store. Two shapes:
//
//   - ROWS 1, the row-wise products (xp·W1, h·W2, dy·W2ᵀ, dz·W1ᵀ): M is the
//     expert's row count, read on the device. The grid is sized for the
//     worst case, every slot in one expert (ceil(S/BM) row tiles), and a
//     block whose row tile starts at or past the expert's row count
//     returns at once, as a whole block and before any barrier. The
//     epilogue adds the bias and applies the activation (storing the
//     pre-activation too when C2 is set), or multiplies by act'(pre).
//   - ROWS 0, the weight gradients (xpᵀ·dz, hᵀ·dy): the K loop runs over
//     the expert's rows, its length read on the device; an expert with no
//     rows gets zero gradients. The blocks of the first row tile also sum
//     the staged slabs of B down the columns into CB, the bias gradient,
//     with the CPU's grouping (backends/cpu colBlockSum: four rows added in
//     float32, those sums added in float64 in row order, the last rows one
//     by one), so the bias gradients are the CPU's bit for bit.
//
// One launch per expert and product: each expert's weights are buffers of
// their own, and a launch names a fixed list of buffers, so one launch for
// every expert would need an entry point per expert count taking 2E
// pointers. The empty blocks of the worst-case grid leave at once, and a
// GEMM's blocks do not depend on one another, so the sums are in a fixed
// order (k ascending within a thread's accumulators) with no atomics.
//
// Offsets are clamped to [0, S] so that a bad offsets vector cannot make a
// block write outside its [S, ·] buffers.
func init() {
	addFamily("moe_gemm", []string{"gemm"}, `template <int ROWS, int TB, int EPI, int ACT, int BM, int BN, int BK, int TM, int TN>
EX_DEV void ex_moe_gemm(const float* A, const float* B, const float* E, float* C, float* C2, float* CB, const i32* off, i32 e, i32 S,
    i32 M, i32 N, i32 K, i32 lda, i32 ldb) {
  const i32 NT = (BM / TM) * (BN / TN);
  const i32 tid = (i32)ex_tid_x();
  const i32 tx = tid % (BN / TN), ty = tid / (BN / TN);
  const i32 m0 = (i32)ex_bid_y() * BM, n0 = (i32)ex_bid_x() * BN;
  i32 lo = off[e], hi = off[e + 1];
  lo = lo < 0 ? 0 : (lo > S ? S : lo);
  hi = hi < lo ? lo : (hi > S ? S : hi);
  const i64 s0 = lo;
  if (ROWS) {
    M = hi - lo;
    if (m0 >= M) return; // past this expert's rows: the whole block leaves
    A += s0 * lda;
    C += s0 * N;
    if (C2) C2 += s0 * N;
    if (EPI == 2) E += s0 * N;
  } else {
    K = hi - lo;
    A += s0 * lda;
    B += s0 * ldb;
  }
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  // The bias gradient: thread tid < BN of the first row tile owns column n0 + tid.
  const bool colsum = !ROWS && CB && m0 == 0 && tid < BN;
  double cs = 0.0;
  float acc[TM][TN];
  ex_tile_zero(acc);
  for (i32 k0 = 0; k0 < K; k0 += BK) {
    // ROWS 0: op(A) = Aᵀ (the weight gradients' xpᵀ, hᵀ).
    ex_stage_a<!ROWS, BM, BK, NT>(As, A, m0, k0, M, K, lda, tid);
    ex_stage_b<TB, BN, BK, NT>(Bs, B, n0, k0, N, K, ldb, tid);
    ex_sync();
    if (colsum) {
      // k0 is a multiple of BK, itself of 4: the groups start where the CPU's do.
      for (i32 p = 0; p < BK && k0 + p < K; p += 4) {
        if (k0 + p + 4 <= K) {
          cs = ex_dadd(cs, (double)((Bs[p][tid] + Bs[p + 1][tid]) + (Bs[p + 2][tid] + Bs[p + 3][tid])));
        } else {
          for (i32 q = p; k0 + q < K; q++) cs = ex_dadd(cs, (double)Bs[q][tid]);
        }
      }
    }
    ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);
    ex_sync();
  }
  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, C2, M, N, m0, n0, tx, ty);
  if (colsum && n0 + tid < N) CB[n0 + tid] = (float)cs;
}
`)
	chooseFor(chooseMoEFFN, "moe_ffn", "moe_ffn_grad")
}

// moeDims are the sizes of a moe_ffn or moe_ffn_grad kernel: slots, experts,
// model and hidden widths.
func moeDims(plan *ir.Plan, k *ir.Kernel) (S, E, d, H int) {
	E = k.Attrs.Int("experts", 1)
	last := plan.Buffers[k.Outs[len(k.Outs)-1]].Type // moe_ffn: y[S,d]; moe_ffn_grad: db2_e[d]
	if k.Op == "moe_ffn" {
		h := plan.Buffers[k.Outs[len(k.Outs)-2]].Type
		return h.Shape[0], E, last.Shape[1], h.Shape[1]
	}
	dy := plan.Buffers[k.Ins[0]].Type
	dz := plan.Buffers[k.Outs[len(k.Outs)-1-4*E]].Type
	return dy.Shape[0], E, dy.Shape[1], dz.Shape[1]
}

// chooseMoEFFN picks a tile per product. A row-wise product runs one launch
// per expert, each over about S/E rows when the routing is balanced, so the
// tile is chosen as for a GEMM of that many rows; the weight gradients are
// [d,H] and [H,d] outputs.
func chooseMoEFFN(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
	if len(k.Outs) < 2 {
		return nil
	}
	S, E, d, H := moeDims(plan, k)
	rows := (S + max(E, 1) - 1) / max(E, 1)
	a := ir.Attrs{"variant": "tiled"}
	if k.Op == "moe_ffn" {
		a["tile_up"] = chooseGemmTile(rows, H).ints()
		a["tile_down"] = chooseGemmTile(rows, d).ints()
		return a
	}
	a["tile_dz"] = chooseGemmTile(rows, H).ints()
	if k.Attrs.Bool("dx", false) {
		a["tile_dx"] = chooseGemmTile(rows, d).ints()
	}
	a["tile_dw1"] = chooseGemmTile(d, H).ints()
	a["tile_dw2"] = chooseGemmTile(H, d).ints()
	return a
}

// moeTile reads one product's tile from the launch attributes.
func (g *gen) moeTile(key string) (gemmTile, error) {
	la := g.launchAttrs()
	if v := la.Str("variant", "tiled"); v != "tiled" {
		return gemmTile{}, fmt.Errorf("unknown %s launch variant %q (want tiled)", g.k.Op, v)
	}
	t, ok := tileFromAttrs(ir.Attrs{"tile": la[key]})
	if !ok {
		return gemmTile{}, fmt.Errorf("launch %s %v is not a tile the cuda backend knows (%v)", key, la[key], gemmTiles)
	}
	return t, nil
}

// moeProduct is one expert product: its operands (null Args where unused)
// and sizes. For ROWS 1, M is ignored (the expert's row count); for ROWS 0,
// K is.
type moeProduct struct {
	rows           bool
	tb             bool
	epi, act       int // epi: 0 plain, 1 bias (+ activation), 2 times act'(pre)
	A, B, E, C, C2 Arg
	CB, off        Arg
	e, S, M, N, K  int
	lda, ldb       int
	tile           gemmTile
}

// moeGemm adds the entry point of p's variant and launches it.
func (g *gen) moeGemm(p moeProduct) error {
	g.use("moe_gemm")
	kind := "w"
	if p.rows {
		kind = "r"
	}
	name := fmt.Sprintf("ex_moe_gemm_%s%s_%s_a%d_%s", kind, tchar(p.tb), []string{"plain", "bias", "grad"}[p.epi], p.act, p.tile)
	src := fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(%d) %s(const float* A, const float* B, const float* E, float* C, float* C2, float* CB,
    const i32* off, i32 e, i32 S, i32 M, i32 N, i32 K, i32 lda, i32 ldb) {
  ex_moe_gemm<%d, %d, %d, %d, %d, %d, %d, %d, %d>(A, B, E, C, C2, CB, off, e, S, M, N, K, lda, ldb);
}
`, p.tile.threads(), name, b2i(p.rows), b2i(p.tb), p.epi, p.act, p.tile.BM, p.tile.BN, p.tile.BK, p.tile.TM, p.tile.TN)
	if err := g.entry(name, src); err != nil {
		return err
	}
	m := p.M
	if p.rows {
		m = p.S // every slot could be this expert's
	}
	g.emit(name, dim2((p.N+p.tile.BN-1)/p.tile.BN, (m+p.tile.BM-1)/p.tile.BM), dim(p.tile.threads()),
		p.A, p.B, p.E, p.C, p.C2, p.CB, p.off, i32Arg(p.e), i32Arg(p.S), i32Arg(p.M), i32Arg(p.N), i32Arg(p.K), i32Arg(p.lda), i32Arg(p.ldb))
	return nil
}
