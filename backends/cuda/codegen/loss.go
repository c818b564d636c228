package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Loss kernels over logits[B, C] and labels[B], as the CPU backend defines
// them: a label below zero marks a padding row (no loss, zero gradient); a
// label at or above C is an error (the kernel stores a status code and
// treats the row as padding; the launcher reports it after the program).
//
// softmax cross-entropy runs as three launches:
//  1. ex_labels_prep: one block counts the valid rows and checks the labels;
//  2. ex_xent_rows<GRAD>: a warp per row computes
//     lse  = max + log Σ exp(l_j − max)
//     loss = lse − ((1−s)·l_y + (s/C)·Σ l_j) + z·lse²
//     g_j  = dloss/valid · (p_j·(1 + 2z·lse) − s/C − (1−s)·[j=y])
//     with sums in float64; the row's loss goes to scratch;
//  3. ex_rows_final: one block adds the row losses in a fixed tree order
//     and divides by the valid count, so the loss is deterministic.
//
// The gradient may overwrite the logits in place: a lane reads and writes
// only its own columns, and reads the label's logit before the warp's first
// shuffle, which every lane passes before any writes.
func init() {
	addFamily("loss", []string{"math"}, `extern "C" __global__ void __launch_bounds__(256) ex_labels_prep(const i32* labels, i64 rows, i32 classes, i32* valid, i32* status, i32 code) {
  __shared__ i32 part[256];
  const i32 t = (i32)ex_tid_x();
  i32 n = 0;
  for (i64 r = t; r < rows; r += 256) {
    const i32 y = labels[r];
    if (y >= classes) ex_fail(status, code);
    else if (y >= 0) n++;
  }
  part[t] = n;
  ex_sync();
  for (i32 s = 128; s > 0; s >>= 1) {
    if (t < s) part[t] += part[t + s];
    ex_sync();
  }
  if (t == 0) valid[0] = part[0];
}

template <int GRAD>
EX_DEV void ex_xent_rows(const float* L, const i32* labels, const float* dloss, const i32* valid, float* G, double* partial,
                         i64 rows, i32 C, double smooth, double zloss) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* l = L + r * C;
  float* g = G + r * C;
  const i32 y = labels[r];
  if (y < 0 || y >= C) {
    if (GRAD) for (i32 j = lane; j < C; j += 32) g[j] = 0.0f;
    if (lane == 0) partial[r] = 0.0;
    return;
  }
  // Pass 1: everything that reads the logits by value, before g (which may
  // be l itself) is written.
  const double ly = (double)l[y];
  float mx = -ex_inff();
  double sumL = 0.0;
  for (i32 j = lane; j < C; j += 32) {
    const float v = l[j];
    mx = (v > mx || v != v) ? v : mx;
    sumL += (double)v;
  }
  mx = ex_warp_max_f(mx);
  sumL = ex_warp_sum_d(sumL);
  // Pass 2: the exponentials, kept in g for pass 3.
  double se = 0.0;
  for (i32 j = lane; j < C; j += 32) {
    const float e = ex_expf(l[j] - mx);
    se += (double)e;
    if (GRAD) g[j] = e;
  }
  se = ex_warp_sum_d(se);
  const double lse = (double)mx + ex_log_d(se);
  if (lane == 0) partial[r] = lse - ((1.0 - smooth) * ly + smooth / C * sumL) + zloss * lse * lse;
  if (GRAD) {
    const double gscale = (double)dloss[0] / (double)valid[0];
    const double a = gscale * (1.0 + 2.0 * zloss * lse) / se;
    const double off = gscale * smooth / C;
    for (i32 j = lane; j < C; j += 32) {
      double v = a * (double)g[j] - off;
      if (j == y) v -= gscale * (1.0 - smooth);
      g[j] = (float)v;
    }
  }
}

// ex_rows_final: out[0] = (Σ partial[r]) / valid, or 0 without valid rows.
extern "C" __global__ void __launch_bounds__(256) ex_rows_final(const double* partial, const i32* valid, float* out, i64 rows) {
  __shared__ double part[256];
  const i32 t = (i32)ex_tid_x();
  double s = 0.0;
  for (i64 r = t; r < rows; r += 256) s += partial[r];
  part[t] = s;
  ex_sync();
  for (i32 h = 128; h > 0; h >>= 1) {
    if (t < h) part[t] += part[t + h];
    ex_sync();
  }
  if (t == 0) {
    const i32 v = valid[0];
    out[0] = v > 0 ? (float)(part[0] / (double)v) : 0.0f;
  }
}

// count_correct: a warp per row finds the first maximal logit; the counts
// are added by ex_count_final. Labels >= C are an error, < 0 padding.
extern "C" __global__ void __launch_bounds__(256) ex_count_rows(const float* L, const i32* labels, i32* hit, i64 rows, i32 C, i32* status, i32 code) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* l = L + r * C;
  const i32 y = labels[r];
  if (y >= C) ex_fail(status, code);
  float best = -ex_inff();
  i32 arg = C;
  for (i32 j = lane; j < C; j += 32) {
    const float v = l[j];
    if (arg == C || v > best) { best = v; arg = j; }
  }
  for (i32 m = 16; m > 0; m >>= 1) {
    const float ob = ex_shfl_xor_f(best, m);
    const i32 oa = ex_shfl_xor_i(arg, m);
    if (oa != C && (arg == C || ob > best || (ob == best && oa < arg))) { best = ob; arg = oa; }
  }
  if (lane == 0) hit[r] = (y >= 0 && y < C && arg == y) ? 1 : 0;
}

extern "C" __global__ void __launch_bounds__(256) ex_count_final(const i32* hit, float* out, i64 rows) {
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
  if (t == 0) out[0] = (float)part[0];
}
`)
	for _, op := range []struct {
		name       string
		loss, grad bool
	}{{"softmax_xent", true, false}, {"softmax_xent_grad", false, true}, {"softmax_xent_fused", true, true}} {
		register(op.name, func(g *gen) error { return genXent(g, op.loss, op.grad) })
	}
	register("count_correct", genCountCorrect)
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		rows := int64(plan.Buffers[k.Ins[0]].Type.Shape[0])
		return ir.Attrs{"variant": "warp_per_row", "block": blockThreads, "grid": int(max((rows+rowsPerBlock-1)/rowsPerBlock, 1))}
	}, "softmax_xent", "softmax_xent_grad", "softmax_xent_fused", "count_correct")
}

func rowGrid(rows int) [3]uint32 { return dim(max((rows+rowsPerBlock-1)/rowsPerBlock, 1)) }

func genXent(g *gen, wantLoss, wantGrad bool) error {
	t := g.inType(0)
	rows, classes := t.Shape[0], t.Shape[1]
	if err := checkRows(g); err != nil {
		return err
	}
	g.use("loss")
	name := "ex_xent_rows_loss"
	if wantGrad {
		name = "ex_xent_rows_grad"
	}
	if err := g.entry(name, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(const float* L, const i32* labels, const float* dloss, const i32* valid, float* G, double* partial, i64 rows, i32 C, double smooth, double zloss) {
  ex_xent_rows<%d>(L, labels, dloss, valid, G, partial, rows, C, smooth, zloss);
}
`, name, b2i(wantGrad))); err != nil {
		return err
	}
	valid := g.reserve(4)
	partial := g.reserve(8 * int64(rows))
	// Without a gradient there is no dloss or G: pass the logits (never
	// dereferenced when GRAD is 0).
	dloss, grad, lossOut := g.in(0), g.in(0), Arg{}
	outs := 0
	if wantLoss {
		lossOut = g.out(0)
		outs++
	}
	if wantGrad {
		dloss, grad = g.in(2), g.out(outs)
	}
	if rows == 0 {
		if wantLoss {
			g.emit("ex_fill", dim(1), dim(blockThreads), lossOut, f32Arg(0), i64Arg(1))
			return g.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;"))
		}
		return nil
	}
	s, z := g.attrs().Float("label_smoothing", 0), g.attrs().Float("z_loss", 0)
	g.emit("ex_labels_prep", dim(1), dim(blockThreads), g.in(1), i64Arg(int64(rows)), i32Arg(classes), scratchArg(valid), statusArg(), g.code(ReasonLabel))
	g.emit(name, rowGrid(rows), dim(blockThreads), g.in(0), g.in(1), dloss, scratchArg(valid), grad, scratchArg(partial),
		i64Arg(int64(rows)), i32Arg(classes), f64Arg(s), f64Arg(z))
	if wantLoss {
		g.emit("ex_rows_final", dim(1), dim(blockThreads), scratchArg(partial), scratchArg(valid), lossOut, i64Arg(int64(rows)))
	}
	return nil
}

func genCountCorrect(g *gen) error {
	t := g.inType(0)
	rows, classes := t.Shape[0], t.Shape[1]
	if err := checkRows(g); err != nil {
		return err
	}
	g.use("loss")
	hit := g.reserve(4 * int64(max(rows, 1)))
	if rows > 0 {
		g.emit("ex_count_rows", rowGrid(rows), dim(blockThreads), g.in(0), g.in(1), scratchArg(hit), i64Arg(int64(rows)), i32Arg(classes), statusArg(), g.code(ReasonLabel))
	}
	g.emit("ex_count_final", dim(1), dim(blockThreads), scratchArg(hit), g.out(0), i64Arg(int64(rows)))
	return nil
}

// checkRows rejects launch choices other than the one variant there is.
func checkRows(g *gen) error {
	if v := g.launchAttrs().Str("variant", "warp_per_row"); v != "warp_per_row" {
		return fmt.Errorf("unknown launch variant %q for %s (want warp_per_row)", v, g.k.Op)
	}
	return nil
}
