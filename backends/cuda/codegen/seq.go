package codegen

import (
	"github.com/expc-dev/expc/ir"
)

// Sequence-model ops (ir/optable_seq.go) other than attention, as
// backends/cpu/seq.go defines them:
//
//   - token_ids, embed, broadcast_scalar: grid-stride loops over the output;
//     a token id at or above the vocabulary is an error (status word, and
//     the row gets the position embedding only);
//   - embed_grad: a thread per column adds the rows in row order, as the CPU
//     does, so the sums are the CPU's bit for bit;
//   - layer_norm(_grad): a warp per row with float64 statistics; the
//     gradient's dγ, dβ are then summed down each column in row order from
//     the per-row mean and 1/σ kept in scratch;
//   - sum_all: one block, float64 partial sums in a fixed tree order.
func init() {
	addFamily("seq", nil, `extern "C" __global__ void __launch_bounds__(256) ex_embed_grad(const float* DY, const i32* ids, float* DT, float* DP, i64 n, i64 d, i64 V, i64 T) {
  for (i64 j = ex_gtid(); j < d; j += ex_gstride()) {
    for (i64 r = 0; r < V; r++) DT[r * d + j] = 0.0f;
    for (i64 r = 0; r < T; r++) DP[r * d + j] = 0.0f;
    for (i64 r = 0; r < n; r++) {
      const float v = DY[r * d + j];
      DP[(r % T) * d + j] += v;
      const i32 id = ids[r];
      if (id >= 0 && id < V) DT[(i64)id * d + j] += v;
    }
  }
}

// ex_layer_norm_rows: y = float32((x − m)·s)·γ + β (forward), or the
// gradient dx = s·(dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)) with the row's m and
// s stored for the column pass.
template <int GRAD>
EX_DEV void ex_layer_norm_rows(const float* DY, const float* X, const float* Gm, const float* Bt, float* Y, double* stats, i64 rows, i64 d, double eps) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* x = X + r * d;
  float* y = Y + r * d;
  double m = 0.0;
  for (i64 j = lane; j < d; j += 32) m += (double)x[j];
  m = ex_ddiv(ex_warp_sum_d(m), (double)d);
  double vr = 0.0;
  for (i64 j = lane; j < d; j += 32) { const double c = ex_dsub((double)x[j], m); vr += c * c; }
  vr = ex_warp_sum_d(vr);
  const double s = ex_ddiv(1.0, ex_dsqrt(ex_dadd(ex_ddiv(vr, (double)d), eps)));
  if (!GRAD) {
    for (i64 j = lane; j < d; j += 32) y[j] = (float)ex_dmul(ex_dsub((double)x[j], m), s) * Gm[j] + Bt[j];
    return;
  }
  if (lane == 0) { stats[2 * r] = m; stats[2 * r + 1] = s; }
  const float* dy = DY + r * d;
  double m1 = 0.0, m2 = 0.0;
  for (i64 j = lane; j < d; j += 32) {
    const double g = (double)dy[j] * (double)Gm[j];
    m1 += g;
    m2 += g * ex_dmul(ex_dsub((double)x[j], m), s);
  }
  m1 = ex_ddiv(ex_warp_sum_d(m1), (double)d);
  m2 = ex_ddiv(ex_warp_sum_d(m2), (double)d);
  for (i64 j = lane; j < d; j += 32) {
    const double xh = ex_dmul(ex_dsub((double)x[j], m), s);
    y[j] = (float)(s * ((double)dy[j] * (double)Gm[j] - m1 - xh * m2));
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_layer_norm(const float* X, const float* Gm, const float* Bt, float* Y, i64 rows, i64 d, double eps) {
  ex_layer_norm_rows<0>(X, X, Gm, Bt, Y, (double*)0, rows, d, eps);
}

extern "C" __global__ void __launch_bounds__(256) ex_layer_norm_grad_rows(const float* DY, const float* X, const float* Gm, float* DX, double* stats, i64 rows, i64 d, double eps) {
  ex_layer_norm_rows<1>(DY, X, Gm, Gm, DX, stats, rows, d, eps);
}

extern "C" __global__ void __launch_bounds__(256) ex_layer_norm_grad_cols(const float* DY, const float* X, const double* stats, float* DG, float* DB, i64 rows, i64 d) {
  for (i64 j = ex_gtid(); j < d; j += ex_gstride()) {
    double ag = 0.0, ab = 0.0;
    for (i64 r = 0; r < rows; r++) {
      const double v = (double)DY[r * d + j];
      ag += v * ex_dsub((double)X[r * d + j], stats[2 * r]) * stats[2 * r + 1];
      ab += v;
    }
    DG[j] = (float)ag;
    DB[j] = (float)ab;
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_sum_all(const float* X, float* out, i64 n) {
  __shared__ double part[256];
  const i32 t = (i32)ex_tid_x();
  double s = 0.0;
  for (i64 i = t; i < n; i += 256) s += (double)X[i];
  part[t] = s;
  ex_sync();
  for (i32 h = 128; h > 0; h >>= 1) {
    if (t < h) part[t] += part[t + h];
    ex_sync();
  }
  if (t == 0) out[0] = (float)part[0];
}
`)
	register("token_ids", func(g *gen) error {
		x := g.inType(0)
		w := x.Shape[1]
		mask, hasMask := g.in(0), 0 // never read without a mask
		if len(g.k.Ins) == 2 {
			mask, hasMask = g.in(1), 1
		}
		return g.streamWith("ex_token_ids", "const float* X, const i32* Mk, i32 has_mask, i32* Y, i64 w, i64 shift",
			"const i64 t = w - 1, r = i / t; const float v = X[r * w + shift + i % t]; Y[i] = (has_mask && Mk[r] < 0) || v < 0.0f ? -1 : (i32)v;",
			g.in(0), mask, i32Arg(hasMask), g.out(0), i64Arg(int64(w)), i64Arg(int64(g.attrs().Int("shift", 0))))
	})
	register("embed", func(g *gen) error {
		tab, pos := g.inType(1), g.inType(2)
		return g.streamWith("ex_embed", "const i32* ids, const float* Tab, const float* Pos, float* Y, i64 d, i64 V, i64 T, i32* status, i32 code",
			"const i64 r = i / d, j = i % d; const i32 id = ids[r]; const float p = Pos[(r % T) * d + j];\n"+
				"    if (id >= V) ex_fail(status, code);\n"+
				"    Y[i] = (id >= 0 && id < V) ? Tab[(i64)id * d + j] + p : p;",
			g.in(0), g.in(1), g.in(2), g.out(0), i64Arg(int64(max(tab.Shape[1], 1))), i64Arg(int64(tab.Shape[0])), i64Arg(int64(pos.Shape[0])),
			statusArg(), g.code(ReasonIndex))
	})
	register("broadcast_scalar", func(g *gen) error {
		return g.streamWith("ex_broadcast_scalar", "const float* S, float* Y", "Y[i] = S[0];", g.in(0), g.out(0))
	})
	register("embed_grad", func(g *gen) error {
		dy := g.inType(0)
		n, d := dy.Shape[0], dy.Shape[1]
		V, T := g.outType(0).Shape[0], g.outType(1).Shape[0]
		g.use("seq")
		if d > 0 {
			g.emit("ex_embed_grad", dim(streamChoice(int64(d)).Int("grid", 1)), dim(blockThreads), g.in(0), g.in(1), g.out(0), g.out(1),
				i64Arg(int64(n)), i64Arg(int64(d)), i64Arg(int64(V)), i64Arg(int64(T)))
		}
		return nil
	})
	register("layer_norm", func(g *gen) error {
		x := g.inType(0)
		g.use("seq")
		if x.Shape[0] > 0 {
			g.emit("ex_layer_norm", rowGrid(x.Shape[0]), dim(blockThreads), g.in(0), g.in(1), g.in(2), g.out(0),
				i64Arg(int64(x.Shape[0])), i64Arg(int64(x.Shape[1])), f64Arg(g.attrs().Float("eps", 1e-5)))
		}
		return nil
	})
	register("layer_norm_grad", func(g *gen) error {
		x := g.inType(1)
		rows, d := x.Shape[0], x.Shape[1]
		g.use("seq")
		stats := scratchArg(g.reserve(16 * int64(max(rows, 1))))
		if rows > 0 {
			g.emit("ex_layer_norm_grad_rows", rowGrid(rows), dim(blockThreads), g.in(0), g.in(1), g.in(2), g.out(0), stats,
				i64Arg(int64(rows)), i64Arg(int64(d)), f64Arg(g.attrs().Float("eps", 1e-5)))
		}
		if d > 0 {
			g.emit("ex_layer_norm_grad_cols", dim(streamChoice(int64(d)).Int("grid", 1)), dim(blockThreads), g.in(0), g.in(1), stats, g.out(1), g.out(2),
				i64Arg(int64(rows)), i64Arg(int64(d)))
		}
		return nil
	})
	register("sum_all", func(g *gen) error {
		g.use("seq")
		g.emit("ex_sum_all", dim(1), dim(blockThreads), g.in(0), g.out(0), i64Arg(g.inType(0).Shape.Elems()))
		return nil
	})
	chooseFor(firstOutElems, "token_ids", "embed", "broadcast_scalar")
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		rows := int64(plan.Buffers[k.Ins[len(k.Ins)-2]].Type.Shape[0])
		if k.Op == "layer_norm" {
			rows = int64(plan.Buffers[k.Ins[0]].Type.Shape[0])
		}
		return ir.Attrs{"variant": "warp_per_row", "block": blockThreads, "grid": int(max((rows+rowsPerBlock-1)/rowsPerBlock, 1))}
	}, "layer_norm", "layer_norm_grad")
}
