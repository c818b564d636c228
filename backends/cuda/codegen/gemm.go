package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Matrix products: C = epilogue(op(A)·op(B)) for row-major matrices, one
// tiled kernel template. A block stages BK-deep slabs of op(A) and op(B) in
// shared memory (zero-padded at the edges) and each thread accumulates a
// TM x TN sub-tile in registers, strided across the block tile so that
// neighbouring threads read neighbouring shared-memory words and write
// neighbouring outputs. The epilogue runs on the registers before the only
// store: a bias (EPI 1), the activation (forward) or times act'(pre) with
// the pre-activation read at the same index (EPI 2, backward).
//
// Outputs never alias inputs (the CPU backend rejects that too).

var actNumbers = map[string]int{"none": 0, "relu": 1, "gelu": 2, "tanh": 3, "sigmoid": 4}

func init() {
	addFamily("gemm", []string{"math"}, `// The pieces of every tiled product (ex_gemm here, and the masked and MoE
// variants): a thread's TM x TN accumulators, strided across the block
// tile; staging of op(A) and op(B) slabs in shared memory (zero-padded at
// the edges, read along memory); the slab's products; and the epilogue.

template <int TM, int TN> EX_DEV void ex_tile_zero(float (&acc)[TM][TN]) {
#pragma unroll
  for (i32 r = 0; r < TM; r++)
#pragma unroll
    for (i32 c = 0; c < TN; c++) acc[r][c] = 0.0f;
}

// ex_stage_a: As[p][i] = op(A)[m0 + i, k0 + p] (op(A) = Aᵀ when TA).
template <int TA, int BM, int BK, int NT>
EX_DEV void ex_stage_a(float (*As)[BM + 1], const float* A, i32 m0, i32 k0, i32 M, i32 K, i32 lda, i32 tid) {
  for (i32 idx = tid; idx < BM * BK; idx += NT) {
    i32 i, p;
    if (TA) { p = idx / BM; i = idx % BM; } else { i = idx / BK; p = idx % BK; }
    const i32 gi = m0 + i, gp = k0 + p;
    float v = 0.0f;
    if (gi < M && gp < K) v = TA ? A[(i64)gp * lda + gi] : A[(i64)gi * lda + gp];
    As[p][i] = v;
  }
}

// ex_stage_b: Bs[p][j] = op(B)[k0 + p, n0 + j] (op(B) = Bᵀ when TB).
template <int TB, int BN, int BK, int NT>
EX_DEV void ex_stage_b(float (*Bs)[BN + 1], const float* B, i32 n0, i32 k0, i32 N, i32 K, i32 ldb, i32 tid) {
  for (i32 idx = tid; idx < BN * BK; idx += NT) {
    i32 j, p;
    if (TB) { j = idx / BK; p = idx % BK; } else { p = idx / BN; j = idx % BN; }
    const i32 gj = n0 + j, gp = k0 + p;
    float v = 0.0f;
    if (gj < N && gp < K) v = TB ? B[(i64)gj * ldb + gp] : B[(i64)gp * ldb + gj];
    Bs[p][j] = v;
  }
}

// ex_tile_fma: acc += the staged slab's products.
template <int BM, int BN, int BK, int TM, int TN>
EX_DEV void ex_tile_fma(const float (*As)[BM + 1], const float (*Bs)[BN + 1], float (&acc)[TM][TN], i32 tx, i32 ty) {
#pragma unroll
  for (i32 p = 0; p < BK; p++) {
    float a[TM], b[TN];
#pragma unroll
    for (i32 r = 0; r < TM; r++) a[r] = As[p][ty + r * (BM / TM)];
#pragma unroll
    for (i32 c = 0; c < TN; c++) b[c] = Bs[p][tx + c * (BN / TN)];
#pragma unroll
    for (i32 r = 0; r < TM; r++)
#pragma unroll
      for (i32 c = 0; c < TN; c++) acc[r][c] += a[r] * b[c];
  }
}

// ex_tile_store writes C[i, j] = epilogue(acc) for the thread's outputs:
// EPI 0 act(v); 1 act(v + E[j]) (a bias); 2 v·act'(E[i, j]) (E the
// pre-activation); 3 v·E[i, j] (E a mask). C2, unless null, gets the value
// before the activation (EPI 0 and 1).
template <int EPI, int ACT, int BM, int BN, int TM, int TN>
EX_DEV void ex_tile_store(const float (&acc)[TM][TN], const float* E, float* C, float* C2, i32 M, i32 N, i32 m0, i32 n0, i32 tx, i32 ty) {
#pragma unroll
  for (i32 r = 0; r < TM; r++) {
    const i32 i = m0 + ty + r * (BM / TM);
#pragma unroll
    for (i32 c = 0; c < TN; c++) {
      const i32 j = n0 + tx + c * (BN / TN);
      if (i < M && j < N) {
        const i64 o = (i64)i * N + j;
        float v = acc[r][c];
        if (EPI == 1) v += E[j];
        if (EPI == 2) v = ex_mul_act_grad<ACT>(v, E[o]);
        else if (EPI == 3) v *= E[o];
        else {
          if (C2) C2[o] = v;
          v = ex_act<ACT>(v);
        }
        C[o] = v;
      }
    }
  }
}

template <int TA, int TB, int EPI, int ACT, int BM, int BN, int BK, int TM, int TN>
EX_DEV void ex_gemm(const float* A, const float* B, const float* E, float* C, i32 M, i32 N, i32 K, i32 lda, i32 ldb) {
  const i32 NT = (BM / TM) * (BN / TN);
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const i32 tid = (i32)ex_tid_x();
  const i32 tx = tid % (BN / TN), ty = tid / (BN / TN);
  const i32 m0 = (i32)ex_bid_y() * BM, n0 = (i32)ex_bid_x() * BN;
  float acc[TM][TN];
  ex_tile_zero(acc);
  for (i32 k0 = 0; k0 < K; k0 += BK) {
    ex_stage_a<TA, BM, BK, NT>(As, A, m0, k0, M, K, lda, tid);
    ex_stage_b<TB, BN, BK, NT>(Bs, B, n0, k0, N, K, ldb, tid);
    ex_sync();
    ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);
    ex_sync();
  }
  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, (float*)0, M, N, m0, n0, tx, ty);
}
`)
	register("matmul", func(g *gen) error { return genGemm(g, false, false) })
	register("matmul_bias_act", func(g *gen) error { return genGemm(g, true, false) })
	register("matmul_act_grad", func(g *gen) error { return genGemm(g, true, true) })
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		a, b := plan.Buffers[k.Ins[0]].Type, plan.Buffers[k.Ins[1]].Type
		m, _, n, err := ir.MatmulDims(a, b, k.Attrs.Bool("transpose_a", false), k.Attrs.Bool("transpose_b", false))
		if err != nil {
			return nil
		}
		return ir.Attrs{"tile": chooseGemmTile(m, n).ints()}
	}, "matmul", "matmul_bias_act", "matmul_act_grad")
}

func genGemm(g *gen, fused, grad bool) error {
	at, bt := g.inType(0), g.inType(1)
	ta, tb := g.attrs().Bool("transpose_a", false), g.attrs().Bool("transpose_b", false)
	m, k, n, err := ir.MatmulDims(at, bt, ta, tb)
	if err != nil {
		return err
	}
	tile, ok := tileFromAttrs(g.launchAttrs())
	if !ok {
		return fmt.Errorf("launch tile %v is not one the cuda backend knows (%v)", g.launchAttrs()["tile"], gemmTiles)
	}
	act, epi := "none", 0
	extra := g.out(0) // unused by EPI 0; any valid pointer
	if fused {
		act = g.attrs().Str("act", "none")
		if len(g.k.Ins) == 3 {
			extra, epi = g.in(2), 1
			if grad {
				epi = 2
			}
		}
	}
	if grad && epi != 2 {
		return fmt.Errorf("matmul_act_grad needs the pre-activation as its third input")
	}
	actN, ok := actNumbers[act]
	if !ok {
		return fmt.Errorf("unknown activation %q", act)
	}
	g.use("gemm")
	name := fmt.Sprintf("ex_gemm_%s%s_%s_%s_%s", tchar(ta), tchar(tb), []string{"plain", "bias", "grad"}[epi], act, tile)
	src := fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(%d) %s(const float* A, const float* B, const float* E, float* C, i32 M, i32 N, i32 K, i32 lda, i32 ldb) {
  ex_gemm<%d, %d, %d, %d, %d, %d, %d, %d, %d>(A, B, E, C, M, N, K, lda, ldb);
}
`, tile.threads(), name, b2i(ta), b2i(tb), epi, actN, tile.BM, tile.BN, tile.BK, tile.TM, tile.TN)
	if err := g.entry(name, src); err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil // nothing to write
	}
	g.emit(name, dim2((n+tile.BN-1)/tile.BN, (m+tile.BM-1)/tile.BM), dim(tile.threads()),
		g.in(0), g.in(1), extra, g.out(0), i32Arg(m), i32Arg(n), i32Arg(k), i32Arg(max(1, at.Shape[1])), i32Arg(max(1, bt.Shape[1])))
	return nil
}

func tchar(t bool) string {
	if t {
		return "t"
	}
	return "n"
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
