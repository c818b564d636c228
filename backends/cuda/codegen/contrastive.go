package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Contrastive ops (ir/optable_contrastive.go), as backends/cpu's
// contrastive_ops.go defines them; a warp per row throughout, with row sums
// in float64.
//
//   - l2_normalize: y = x · float32(1/max(‖x‖, 1e-12));
//   - l2_normalize_grad: dx = dy·float32(1/‖x‖) − x·float32((x·dy)/‖x‖³),
//     or dy/1e-12 below the clamp;
//   - contrastive_mask: each (i, j) is decided by its lane; the hard-negative
//     threshold (the hard_k-th largest kept similarity, duplicates counted)
//     is the kept value with fewer than hard_k kept values above it and at
//     least hard_k at or above it, found by counting (O(cols²/32) a row);
//   - soft_xent(_grad): a first launch marks the rows that count (a
//     positive and a non-empty denominator), a second counts them, a third
//     computes each row's loss term (and gradient); the loss is the sum of
//     the row terms in a fixed tree order over the count (ex_rows_final).
func init() {
	addFamily("contrastive", []string{"math"}, `extern "C" __global__ void __launch_bounds__(256) ex_l2_normalize(const float* X, float* Y, i64 rows, i64 d) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* x = X + r * d;
  float* y = Y + r * d;
  double ss = 0.0;
  for (i64 j = lane; j < d; j += 32) ss += (double)x[j] * (double)x[j];
  ss = ex_warp_sum_d(ss);
  const double n = ex_dsqrt(ss);
  const float inv = (float)ex_ddiv(1.0, n > 1e-12 ? n : 1e-12);
  for (i64 j = lane; j < d; j += 32) y[j] = x[j] * inv;
}

extern "C" __global__ void __launch_bounds__(256) ex_l2_normalize_grad(const float* DY, const float* X, float* DX, i64 rows, i64 d) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* x = X + r * d;
  const float* dy = DY + r * d;
  float* dx = DX + r * d;
  double ss = 0.0, dot = 0.0;
  for (i64 j = lane; j < d; j += 32) {
    ss += (double)x[j] * (double)x[j];
    dot += (double)x[j] * (double)dy[j];
  }
  ss = ex_warp_sum_d(ss);
  dot = ex_warp_sum_d(dot);
  const double n = ex_dsqrt(ss);
  if (n <= 1e-12) {
    for (i64 j = lane; j < d; j += 32) dx[j] = (float)ex_ddiv((double)dy[j], 1e-12);
    return;
  }
  const float c = (float)ex_ddiv(dot, ex_dmul(ex_dmul(n, n), n));
  const float inv = (float)ex_ddiv(1.0, n);
  for (i64 j = lane; j < d; j += 32) dx[j] = dy[j] * inv - x[j] * c;
}

// ex_contrastive_mask: obj 0 nt_xent, 1 decoupled, 2 supcon, 3 dual.
extern "C" __global__ void __launch_bounds__(256) ex_contrastive_mask(const float* S, const i32* labels, const float* G, float* M, float* P,
    i64 rows, i64 cols, i32 obj, i64 hard_k, i32 guided, i32* status, i32 code) {
  const i64 i = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (i >= rows) return;
  const float* s = S + i * cols;
  float* m = M + i * cols;
  float* p = P + i * cols;
  if (obj == 2) {
    const i32 yi = labels[i];
    if (yi < 0) ex_fail(status, code);
    i32 n = 0;
    for (i64 j = lane; j < cols; j += 32) n += (j != i && labels[j] == yi) ? 1 : 0;
    n = ex_warp_sum_i(n);
    const float w = n > 0 ? 1.0f / (float)n : 0.0f;
    for (i64 j = lane; j < cols; j += 32) {
      m[j] = j != i ? 1.0f : 0.0f;
      p[j] = (j != i && labels[j] == yi) ? w : 0.0f;
    }
    return;
  }
  const bool dual = obj == 3;
  const i64 pos = dual ? i : (i + rows / 2) % rows;
  const float gpos = guided ? G[i * cols + pos] : 0.0f;
  // kept: a negative in the denominator before the hard-negative cut.
#define EX_KEPT(j) ((j) != pos && (dual || (j) != i) && !(guided && G[i * cols + (j)] > gpos))
  float thr = -ex_inff();
  bool cut = false;
  if (hard_k > 0) {
    i32 kept = 0;
    for (i64 j = lane; j < cols; j += 32) kept += EX_KEPT(j) ? 1 : 0;
    kept = ex_warp_sum_i(kept);
    if (kept > hard_k) {
      cut = true;
      float found = -ex_inff();
      for (i64 j = lane; j < cols; j += 32) {
        if (!EX_KEPT(j)) continue;
        const float v = s[j];
        i64 gt = 0, ge = 0;
        for (i64 t = 0; t < cols; t++) {
          if (!EX_KEPT(t)) continue;
          gt += s[t] > v;
          ge += s[t] >= v;
        }
        if (gt < hard_k && ge >= hard_k) found = v;
      }
      thr = ex_warp_max_f(found);
    }
  }
  for (i64 j = lane; j < cols; j += 32) {
    float mv = 0.0f, pv = 0.0f;
    if (j == pos) {
      pv = 1.0f;
      mv = obj == 1 ? 0.0f : 1.0f;
    } else if (EX_KEPT(j)) {
      mv = (cut && s[j] < thr) ? 0.0f : 1.0f;
    }
    m[j] = mv;
    p[j] = pv;
  }
#undef EX_KEPT
}

// ex_soft_xent_counts: hit[r] = 1 when row r has a positive and a
// non-empty denominator.
extern "C" __global__ void __launch_bounds__(256) ex_soft_xent_counts(const float* M, const float* P, i32* hit, i64 rows, i64 cols) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  double sm = 0.0, sp = 0.0;
  for (i64 j = lane; j < cols; j += 32) { sm += (double)M[r * cols + j]; sp += (double)P[r * cols + j]; }
  sm = ex_warp_sum_d(sm);
  sp = ex_warp_sum_d(sp);
  if (lane == 0) hit[r] = (sp > 0.0 && sm > 0.0) ? 1 : 0;
}

extern "C" __global__ void __launch_bounds__(256) ex_sum_i32(const i32* hit, i32* out, i64 rows) {
  __shared__ i32 part[256];
  const i32 t = (i32)ex_tid_x();
  i32 n = 0;
  for (i64 r = t; r < rows; r += 256) n += hit[r];
  part[t] = n;
  ex_sync();
  for (i32 h = 128; h > 0; h >>= 1) {
    if (t < h) part[t] += part[t + h];
    ex_sync();
  }
  if (t == 0) out[0] = part[0];
}

template <int GRAD>
EX_DEV void ex_soft_xent_rows(const float* L, const float* M, const float* P, const i32* hit, const i32* valid, const float* dloss,
                              float* G, double* partial, i64 rows, i64 cols) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* l = L + r * cols;
  const float* m = M + r * cols;
  const float* p = P + r * cols;
  float* g = G + r * cols;
  if (!hit[r]) {
    if (GRAD) for (i64 j = lane; j < cols; j += 32) g[j] = 0.0f;
    if (lane == 0) partial[r] = 0.0;
    return;
  }
  float mx = -ex_inff();
  for (i64 j = lane; j < cols; j += 32) if (m[j] != 0.0f && l[j] > mx) mx = l[j];
  mx = ex_warp_max_f(mx);
  double se = 0.0, pos = 0.0;
  for (i64 j = lane; j < cols; j += 32) {
    if (m[j] != 0.0f) se += (double)m[j] * (double)ex_expf(l[j] - mx);
    pos += (double)p[j] * (double)l[j];
  }
  se = ex_warp_sum_d(se);
  pos = ex_warp_sum_d(pos);
  const double lse = (double)mx + ex_log_d(se);
  if (lane == 0) partial[r] = lse - pos;
  if (GRAD) {
    const double gscale = (double)dloss[0] / (double)valid[0];
    for (i64 j = lane; j < cols; j += 32) {
      double sm = 0.0;
      if (m[j] != 0.0f) sm = (double)m[j] * (double)ex_expf((float)((double)l[j] - lse));
      g[j] = (float)(gscale * (sm - (double)p[j]));
    }
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_soft_xent_rows_loss(const float* L, const float* M, const float* P, const i32* hit, const i32* valid,
    const float* dloss, float* G, double* partial, i64 rows, i64 cols) {
  ex_soft_xent_rows<0>(L, M, P, hit, valid, dloss, G, partial, rows, cols);
}

extern "C" __global__ void __launch_bounds__(256) ex_soft_xent_rows_grad(const float* L, const float* M, const float* P, const i32* hit, const i32* valid,
    const float* dloss, float* G, double* partial, i64 rows, i64 cols) {
  ex_soft_xent_rows<1>(L, M, P, hit, valid, dloss, G, partial, rows, cols);
}
`)
	register("l2_normalize", func(g *gen) error {
		t := g.inType(0)
		g.use("contrastive")
		if t.Shape[0] > 0 {
			g.emit("ex_l2_normalize", rowGrid(t.Shape[0]), dim(blockThreads), g.in(0), g.out(0), i64Arg(int64(t.Shape[0])), i64Arg(int64(t.Shape[1])))
		}
		return nil
	})
	register("l2_normalize_grad", func(g *gen) error {
		t := g.inType(1)
		g.use("contrastive")
		if t.Shape[0] > 0 {
			g.emit("ex_l2_normalize_grad", rowGrid(t.Shape[0]), dim(blockThreads), g.in(0), g.in(1), g.out(0), i64Arg(int64(t.Shape[0])), i64Arg(int64(t.Shape[1])))
		}
		return nil
	})
	register("contrastive_mask", genContrastiveMask)
	register("soft_xent", func(g *gen) error { return genSoftXent(g, false) })
	register("soft_xent_grad", func(g *gen) error { return genSoftXent(g, true) })
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		rows := int64(plan.Buffers[k.Ins[0]].Type.Shape[0])
		return ir.Attrs{"variant": "warp_per_row", "block": blockThreads, "grid": int(max((rows+rowsPerBlock-1)/rowsPerBlock, 1))}
	}, "l2_normalize", "l2_normalize_grad", "contrastive_mask", "soft_xent", "soft_xent_grad")
}

var contrastiveObjectives = map[string]int{"nt_xent": 0, "decoupled": 1, "supcon": 2, "dual": 3}

func genContrastiveMask(g *gen) error {
	if err := checkRows(g); err != nil {
		return err
	}
	a := g.attrs()
	obj, ok := contrastiveObjectives[a.Str("objective", "")]
	if !ok {
		return fmt.Errorf("unknown contrastive objective %q", a.Str("objective", ""))
	}
	t := g.inType(0)
	rows, cols := t.Shape[0], t.Shape[1]
	labels, guide := g.in(0), g.in(0) // never read when absent
	next := 1
	if obj == 2 {
		labels = g.in(next)
		next++
	}
	guided := a.Bool("guided", false)
	if guided {
		guide = g.in(next)
	}
	g.use("contrastive")
	if rows > 0 {
		g.emit("ex_contrastive_mask", rowGrid(rows), dim(blockThreads), g.in(0), labels, guide, g.out(0), g.out(1),
			i64Arg(int64(rows)), i64Arg(int64(cols)), i32Arg(obj), i64Arg(int64(a.Int("hard_k", 0))), i32Arg(b2i(guided)), statusArg(), g.code(ReasonLabel))
	}
	return nil
}

func genSoftXent(g *gen, grad bool) error {
	if err := checkRows(g); err != nil {
		return err
	}
	t := g.inType(0)
	rows, cols := t.Shape[0], t.Shape[1]
	g.use("contrastive")
	g.use("loss")
	hit := g.reserve(4 * int64(max(rows, 1)))
	valid := g.reserve(4)
	partial := g.reserve(8 * int64(max(rows, 1)))
	dloss, out := g.in(0), g.in(0) // never read or written by the loss variant
	name := "ex_soft_xent_rows_loss"
	if grad {
		dloss, out, name = g.in(3), g.out(0), "ex_soft_xent_rows_grad"
	}
	if rows == 0 {
		if !grad {
			if err := g.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;")); err != nil {
				return err
			}
			g.emit("ex_fill", dim(1), dim(blockThreads), g.out(0), f32Arg(0), i64Arg(1))
		}
		return nil
	}
	n := i64Arg(int64(rows))
	g.emit("ex_soft_xent_counts", rowGrid(rows), dim(blockThreads), g.in(1), g.in(2), scratchArg(hit), n, i64Arg(int64(cols)))
	g.emit("ex_sum_i32", dim(1), dim(blockThreads), scratchArg(hit), scratchArg(valid), n)
	g.emit(name, rowGrid(rows), dim(blockThreads), g.in(0), g.in(1), g.in(2), scratchArg(hit), scratchArg(valid), dloss, out, scratchArg(partial), n, i64Arg(int64(cols)))
	if !grad {
		g.emit("ex_rows_final", dim(1), dim(blockThreads), scratchArg(partial), scratchArg(valid), g.out(0), n)
	}
	return nil
}
