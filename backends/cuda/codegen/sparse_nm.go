package codegen

import (
	"fmt"
)

// nmMaxM is the largest group the packed N:M variant takes (its staged
// slab of A, one group at least, must fit shared memory with the slots);
// larger groups run on index lists.
const nmMaxM = 16

// The compressed N:M ("nm") variant of the forward product and the weight
// gradient (the input gradient runs on index lists: see maskedVariant).
//
// Each step a pack kernel (one thread per group of m rows and column j)
// writes, for every group, its kept rows in ascending order: the row
// within the group, the value (W·M, or M for the weight gradient) and the
// count. The format has room for all m rows, so it holds any mask exactly:
// a group with more than n kept rows (the all-ones mask after a switch to
// dense) just uses more slots.
//
// Forward: the GEMM template's tiling over (batch, columns) with a K loop
// over slabs of whole groups. A block stages its slab of X in shared
// memory and the slots of its columns, and each thread gathers the X
// values its columns keep (one shared load and FMA per kept weight and
// batch row): n of every m products. The slot count of a slab is n unless
// one of the block's groups there keeps more, then m (the rest are
// zero-valued pads), so any mask gives the exact product.
//
// Weight gradient: one thread per (group, slot, column) — consecutive
// threads are consecutive columns, so the slots past a group's count are
// whole idle warps on an n:m mask — sums X[:, k]·dY[:, j] over the batch
// at its kept row k; the pack writes zeros at the pruned positions.
func init() {
	addFamily("sparse_nm", []string{"gemm"}, `// ex_nm_pack: for group g (rows g*MM ... +MM) and column j, the kept rows
// r in ascending order as slots s: I[(g*MM+s)*cols + j] = r, V = W·M (DW:
// M, and zeros written to D at pruned positions), Cn[g*cols + j] = count.
template <int MM, int DW>
EX_DEV void ex_nm_pack(const float* W, const float* Mk, float* V, i32* I, i32* Cn, float* D, i32 groups, i32 cols) {
  const i64 n = (i64)groups * cols;
  for (i64 u = ex_gtid(); u < n; u += ex_gstride()) {
    const i64 g = u / cols, j = u % cols;
    i32 c = 0;
#pragma unroll
    for (i32 r = 0; r < MM; r++) {
      const i64 i = (g * MM + r) * cols + j;
      const float m = Mk[i];
      if (m != 0.0f) {
        const i64 s = (g * MM + c) * cols + j;
        I[s] = r;
        V[s] = DW ? m : W[i] * m;
        c++;
      } else if (DW) {
        D[i] = 0.0f;
      }
    }
    Cn[u] = c;
  }
}

// ex_nm_fwd: C[M, N] = epilogue(A·(W ⊙ Mk)) from the packed slots; A is
// M x (G*MM). Slabs of BG groups.
template <int EPI, int ACT, int BM, int BN, int TM, int TN, int MM, int NN, int BG>
EX_DEV void ex_nm_fwd(const float* A, const float* V, const i32* I, const i32* Cn, const float* E, float* C, i32 M, i32 N, i32 G) {
  const i32 NT = (BM / TM) * (BN / TN), KC = BG * MM;
  const i64 lda = (i64)G * MM;
  __shared__ float As[KC][BM + 1];
  __shared__ float Vs[KC][BN + 1];
  __shared__ i32 Is[KC][BN + 1];
  __shared__ i32 Cs[BG][BN];
  __shared__ i32 over[2]; // per slab parity: a group keeps more than NN
  const i32 tid = (i32)ex_tid_x();
  const i32 tx = tid % (BN / TN), ty = tid / (BN / TN);
  const i32 m0 = (i32)ex_bid_y() * BM, n0 = (i32)ex_bid_x() * BN;
  float acc[TM][TN];
  ex_tile_zero(acc);
  if (tid == 0) over[0] = 0;
  ex_sync();
  i32 par = 0;
  for (i32 g0 = 0; g0 < G; g0 += BG, par ^= 1) {
    for (i32 x = tid; x < BM * KC; x += NT) {
      const i32 i = x / KC, p = x % KC;
      const i32 gi = m0 + i;
      As[p][i] = (gi < M && g0 * MM + p < lda) ? A[(i64)gi * lda + g0 * MM + p] : 0.0f;
    }
    for (i32 x = tid; x < BG * BN; x += NT) {
      const i32 gl = x / BN, j = x % BN;
      const i32 c = (g0 + gl < G && n0 + j < N) ? Cn[(i64)(g0 + gl) * N + n0 + j] : 0;
      Cs[gl][j] = c;
      if (c > NN) over[par] = 1; // every writer stores the same value
    }
    if (tid == 0) over[par ^ 1] = 0; // the next slab's flag; its last reader passed a barrier
    ex_sync();
    const i32 S = over[par] ? MM : NN;
    for (i32 x = tid; x < BG * S * BN; x += NT) {
      const i32 j = x % BN, q = x / BN, s = q % S, gl = q / S;
      float v = 0.0f;
      i32 r = 0;
      if (s < Cs[gl][j]) {
        const i64 o = ((i64)(g0 + gl) * MM + s) * N + n0 + j;
        v = V[o];
        r = I[o];
      }
      Vs[gl * MM + s][j] = v;
      Is[gl * MM + s][j] = gl * MM + r;
    }
    ex_sync();
    for (i32 gl = 0; gl < BG; gl++) {
      for (i32 s = 0; s < S; s++) {
#pragma unroll
        for (i32 c = 0; c < TN; c++) {
          const i32 jl = tx + c * (BN / TN);
          const float v = Vs[gl * MM + s][jl];
          const i32 p = Is[gl * MM + s][jl];
#pragma unroll
          for (i32 r = 0; r < TM; r++) acc[r][c] += As[p][ty + r * (BM / TM)] * v;
        }
      }
    }
    ex_sync();
  }
  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, (float*)0, M, N, m0, n0, tx, ty);
}

// ex_nm_dw: D[k, j] = M[k, j]·Σ_b X[b, k]·dY[b, j] at every kept (k, j),
// one thread per slot u = (g*MM + s)*cols + j.
template <int MM>
EX_DEV void ex_nm_dw(const float* X, const float* dY, const float* V, const i32* I, const i32* Cn, float* D, i32 B, i32 rows, i32 cols) {
  const i64 n = (i64)rows * cols;
  for (i64 u = ex_gtid(); u < n; u += ex_gstride()) {
    const i64 j = u % cols, gs = u / cols, g = gs / MM, s = gs % MM;
    if (s >= Cn[g * cols + j]) continue;
    const i64 k = g * MM + I[u];
    float acc = 0.0f;
    for (i64 b = 0; b < B; b++) acc += X[b * rows + k] * dY[b * cols + j];
    D[k * cols + j] = acc * V[u];
  }
}
`)
}

func genMaskedNM(g *gen) error {
	a := g.attrs()
	nn, mm := a.Int("n", 0), a.Int("m", 0)
	mt := g.inType(2) // the mask: W's shape, rows (in) x cols (out)
	rows, cols := mt.Shape[0], mt.Shape[1]
	batch := g.inType(0).Shape[0]
	groups := rows / mm
	g.use("sparse_nm")
	dw := g.k.Op == "masked_matmul_dw"
	v := g.reserve(4 * int64(rows) * int64(cols))
	ix := g.reserve(4 * int64(rows) * int64(cols))
	cn := g.reserve(4 * int64(groups) * int64(cols))
	pack := fmt.Sprintf("ex_nm_pack_%d_%s", mm, map[bool]string{false: "w", true: "dw"}[dw])
	if err := g.entry(pack, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(const float* W, const float* Mk, float* V, i32* I, i32* Cn, float* D, i32 groups, i32 cols) {
  ex_nm_pack<%d, %d>(W, Mk, V, I, Cn, D, groups, cols);
}
`, pack, mm, b2i(dw))); err != nil {
		return err
	}
	grid := dim(streamChoice(int64(groups)*int64(cols)).Int("grid", 1))
	if dw {
		g.emit(pack, grid, dim(blockThreads), g.in(2), g.in(2), scratchArg(v), scratchArg(ix), scratchArg(cn), g.out(0), i32Arg(groups), i32Arg(cols))
		name := fmt.Sprintf("ex_nm_dw_%d", mm)
		if err := g.entry(name, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(const float* X, const float* dY, const float* V, const i32* I, const i32* Cn,
    float* D, i32 B, i32 rows, i32 cols) {
  ex_nm_dw<%d>(X, dY, V, I, Cn, D, B, rows, cols);
}
`, name, mm)); err != nil {
			return err
		}
		g.emit(name, dim(streamChoice(int64(rows)*int64(cols)).Int("grid", 1)), dim(blockThreads),
			g.in(0), g.in(1), scratchArg(v), scratchArg(ix), scratchArg(cn), g.out(0), i32Arg(batch), i32Arg(rows), i32Arg(cols))
		return nil
	}
	tile, ok := tileFromAttrs(g.launchAttrs())
	if !ok {
		return fmt.Errorf("launch tile %v is not one the cuda backend knows (%v)", g.launchAttrs()["tile"], gemmTiles)
	}
	act, epi, extra, err := maskedEpilogue(g)
	if err != nil {
		return err
	}
	// The output is written by the GEMM only: the pack's D is unused.
	g.emit(pack, grid, dim(blockThreads), g.in(1), g.in(2), scratchArg(v), scratchArg(ix), scratchArg(cn), g.out(0), i32Arg(groups), i32Arg(cols))
	bg := max(1, nmMaxM/mm) // groups per slab: at most nmMaxM rows of X
	name := fmt.Sprintf("ex_nm_fwd_%d_%d_%s_%s_%s", nn, mm, []string{"plain", "bias", "grad"}[epi], act, tile)
	if err := g.entry(name, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(%d) %s(const float* A, const float* V, const i32* I, const i32* Cn,
    const float* E, float* C, i32 M, i32 N, i32 G) {
  ex_nm_fwd<%d, %d, %d, %d, %d, %d, %d, %d, %d>(A, V, I, Cn, E, C, M, N, G);
}
`, tile.threads(), name, epi, actNumbers[act], tile.BM, tile.BN, tile.TM, tile.TN, mm, nn, bg)); err != nil {
		return err
	}
	g.emit(name, dim2((cols+tile.BN-1)/tile.BN, (batch+tile.BM-1)/tile.BM), dim(tile.threads()),
		g.in(0), scratchArg(v), scratchArg(ix), scratchArg(cn), extra, g.out(0), i32Arg(batch), i32Arg(cols), i32Arg(groups))
	return nil
}
