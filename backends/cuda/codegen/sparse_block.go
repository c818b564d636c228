package codegen

import (
	"fmt"
)

// The block-sparse ("block") variant of the masked products, for any mask:
// the work falls with the fraction of GEMM tiles the mask occupies, so it
// pays for block patterns whose blocks cover the launch tile's BK x BN
// (or are aligned multiples of it).
//
// Forward and input gradient: a list kernel (one block per BN-wide tile of
// outputs) marks, each step, which BK-deep chunks of the reduction hold a
// kept weight of that tile of op(W ⊙ M), and compacts them in ascending
// order; the GEMM (the GEMM template's tiling, W ⊙ M formed while staging
// B) then runs its K loop over the listed chunks only. Chunks left out are
// exactly zero, and the order of the rest is fixed, so the sums are the
// same run to run.
//
// Weight gradient: each BM x BN tile of D first checks the mask over its
// own tile; a tile without a kept weight writes zeros and skips the whole
// batch reduction, the others run the GEMM and multiply by M.
func init() {
	addFamily("sparse_block", []string{"gemm"}, `// ex_blk_list: for output tile t (BN outputs) the chunks c of BK
// reduction indices whose mask tile holds a non-zero, ascending, in
// list[t*kc : t*kc + cnt[t]]. Mask element (reduction p, output j) is
// Mk[p*cols + j], or Mk[j*cols + p] when TB.
template <int TB, int BN, int BK>
EX_DEV void ex_blk_list(const float* Mk, i32* list, i32* cnt, i32 N, i32 K, i32 cols, i32 kc) {
  const i32 t = (i32)ex_tid_x(), tile = (i32)ex_bid_x();
  const i32 n0 = tile * BN;
  i32* l = list + (i64)tile * kc;
  for (i32 c = t; c < kc; c += 256) {
    i32 any = 0;
    for (i32 p = c * BK; p < c * BK + BK && p < K && !any; p++)
      for (i32 j = n0; j < n0 + BN && j < N; j++)
        if ((TB ? Mk[(i64)j * cols + p] : Mk[(i64)p * cols + j]) != 0.0f) { any = 1; break; }
    l[c] = any;
  }
  ex_sync(); // the flags are visible to the whole block
  if (t == 0) {
    i32 w = 0;
    for (i32 c = 0; c < kc; c++)
      if (l[c]) l[w++] = c;
    cnt[tile] = w;
  }
}

// ex_bgemm: the GEMM template's tiling. DW 0: C[M, N] = epilogue(A·op(W ⊙ M))
// over the listed K chunks (A: M x K, lda; W and Mk with ldb). DW 1:
// C = (Aᵀ·B) ⊙ Mk (A: K x M = X, B: K x N = dY), tiles without a kept
// weight skipped.
template <int TB, int EPI, int ACT, int BM, int BN, int BK, int TM, int TN, int DW>
EX_DEV void ex_bgemm(const float* A, const float* B, const float* Mk, const float* E, float* C, const i32* list, const i32* cnt,
    i32 M, i32 N, i32 K, i32 lda, i32 ldb, i32 kc) {
  const i32 NT = (BM / TM) * (BN / TN);
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  __shared__ i32 occupied;
  const i32 tid = (i32)ex_tid_x();
  const i32 tx = tid % (BN / TN), ty = tid / (BN / TN);
  const i32 m0 = (i32)ex_bid_y() * BM, n0 = (i32)ex_bid_x() * BN;
  float acc[TM][TN];
  ex_tile_zero(acc);
  i32 nl;
  if (DW) {
    if (tid == 0) occupied = 0;
    ex_sync();
    bool f = false;
    for (i32 x = tid; x < BM * BN; x += NT) {
      const i32 i = m0 + x / BN, j = n0 + x % BN;
      if (i < M && j < N && Mk[(i64)i * N + j] != 0.0f) f = true;
    }
    if (f) occupied = 1; // every writer stores the same value
    ex_sync();
    nl = occupied ? (K + BK - 1) / BK : 0;
  } else {
    nl = cnt[ex_bid_x()];
  }
  for (i32 li = 0; li < nl; li++) {
    const i32 k0 = (DW ? li : list[(i64)ex_bid_x() * kc + li]) * BK;
    ex_stage_a<DW, BM, BK, NT>(As, A, m0, k0, M, K, lda, tid);
    for (i32 x = tid; x < BN * BK; x += NT) {
      i32 j, p;
      if (TB) { j = x / BK; p = x % BK; } else { p = x / BN; j = x % BN; }
      const i32 gj = n0 + j, gp = k0 + p;
      float v = 0.0f;
      if (gj < N && gp < K) {
        const i64 o = TB ? (i64)gj * ldb + gp : (i64)gp * ldb + gj;
        v = DW ? B[o] : B[o] * Mk[o];
      }
      Bs[p][j] = v;
    }
    ex_sync();
    ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);
    ex_sync();
  }
  // DW: times the mask (EPI 3), else the op's epilogue.
  ex_tile_store<DW ? 3 : EPI, ACT, BM, BN>(acc, DW ? Mk : E, C, (float*)0, M, N, m0, n0, tx, ty);
}
`)
}

func genMaskedBlock(g *gen) error {
	tile, ok := tileFromAttrs(g.launchAttrs())
	if !ok {
		return fmt.Errorf("launch tile %v is not one the cuda backend knows (%v)", g.launchAttrs()["tile"], gemmTiles)
	}
	mt := g.inType(2) // the mask: W's shape, rows (in) x cols (out)
	rows, cols := mt.Shape[0], mt.Shape[1]
	batch := g.inType(0).Shape[0]
	g.use("sparse_block")
	params := `(const float* A, const float* B, const float* Mk, const float* E, float* C, const i32* list, const i32* cnt,
    i32 M, i32 N, i32 K, i32 lda, i32 ldb, i32 kc)`
	tparams := fmt.Sprintf("%d, %d, %d, %d, %d", tile.BM, tile.BN, tile.BK, tile.TM, tile.TN)
	gemmEntry := func(name string, tb, epi, act, dw int) error {
		return g.entry(name, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(%d) %s%s {
  ex_bgemm<%d, %d, %d, %s, %d>(A, B, Mk, E, C, list, cnt, M, N, K, lda, ldb, kc);
}
`, tile.threads(), name, params, tb, epi, act, tparams, dw))
	}
	if g.k.Op == "masked_matmul_dw" {
		// D[rows, cols] = (Xᵀ·dY) ⊙ M, tiles without a kept weight skipped.
		name := "ex_bgemm_dw_" + tile.String()
		if err := gemmEntry(name, 0, 0, 0, 1); err != nil {
			return err
		}
		g.emit(name, dim2((cols+tile.BN-1)/tile.BN, (rows+tile.BM-1)/tile.BM), dim(tile.threads()),
			g.in(0), g.in(1), g.in(2), g.out(0), g.out(0), g.in(2), g.in(2),
			i32Arg(rows), i32Arg(cols), i32Arg(batch), i32Arg(rows), i32Arg(cols), i32Arg(0))
		return nil
	}
	act, epi, extra, err := maskedEpilogue(g)
	if err != nil {
		return err
	}
	tb := g.attrs().Bool("transpose_b", false)
	n, k := cols, rows // forward: C[batch, cols] = X·(W⊙M)
	if tb {
		n, k = rows, cols // input: C[batch, rows] = dY·(W⊙M)ᵀ
	}
	tiles, kc := (n+tile.BN-1)/tile.BN, (k+tile.BK-1)/tile.BK
	list := g.reserve(4 * int64(tiles) * int64(kc))
	cnt := g.reserve(4 * int64(tiles))
	lname := fmt.Sprintf("ex_blk_list_%s_%dx%d", tchar(tb), tile.BN, tile.BK)
	if err := g.entry(lname, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(const float* Mk, i32* list, i32* cnt, i32 N, i32 K, i32 cols, i32 kc) {
  ex_blk_list<%d, %d, %d>(Mk, list, cnt, N, K, cols, kc);
}
`, lname, b2i(tb), tile.BN, tile.BK)); err != nil {
		return err
	}
	g.emit(lname, dim(tiles), dim(blockThreads), g.in(2), scratchArg(list), scratchArg(cnt), i32Arg(n), i32Arg(k), i32Arg(cols), i32Arg(kc))
	name := fmt.Sprintf("ex_bgemm_%s_%s_%s_%s", tchar(tb), []string{"plain", "bias", "grad"}[epi], act, tile)
	if err := gemmEntry(name, b2i(tb), epi, actNumbers[act], 0); err != nil {
		return err
	}
	g.emit(name, dim2(tiles, (batch+tile.BM-1)/tile.BM), dim(tile.threads()),
		g.in(0), g.in(1), g.in(2), extra, g.out(0), scratchArg(list), scratchArg(cnt),
		i32Arg(batch), i32Arg(n), i32Arg(k), i32Arg(k), i32Arg(cols), i32Arg(kc))
	return nil
}
