package codegen

// mixture_nll and mixture_nll_grad (ir/optable_seq.go), as backends/cpu's
// seq.go computes them: a thread per row (E is a handful of experts), the
// log-densities in float64 with float64 log and, for lack of a float64 exp
// without libdevice, float32 exp (relative error ~1e-7, below the float32
// results' own rounding). Rows with a negative mask are padding. The loss is
// the row terms summed in a fixed tree order over the valid count
// (ex_rows_final); dlog σ²[e] is the column sum of per-row terms in row
// order.
func init() {
	addFamily("mixture", []string{"math"}, `extern "C" __global__ void __launch_bounds__(256) ex_count_nonneg(const i32* mask, i32* valid, i64 rows) {
  __shared__ i32 part[256];
  const i32 t = (i32)ex_tid_x();
  i32 n = 0;
  for (i64 r = t; r < rows; r += 256) n += mask[r] >= 0 ? 1 : 0;
  part[t] = n;
  ex_sync();
  for (i32 h = 128; h > 0; h >>= 1) {
    if (t < h) part[t] += part[t + h];
    ex_sync();
  }
  if (t == 0) valid[0] = part[0];
}

EX_DEV double ex_mix_logn(double y, double mu, double lv) {
  const double d = y - mu;
  return -0.5 * ex_log_d(6.283185307179586) - 0.5 * lv - d * d / (2.0 * (double)ex_expf((float)lv));
}

template <int GRAD>
EX_DEV void ex_mixture_rows(const float* Gt, const float* MU, const float* LV, const float* Y, const i32* mask, const i32* valid,
                            const float* dloss, float* DG, float* DMU, double* partial, double* part2, i64 B, i64 E) {
  for (i64 r = ex_gtid(); r < B; r += ex_gstride()) {
    if (mask[r] < 0) {
      partial[r] = 0.0;
      if (GRAD) for (i64 e = 0; e < E; e++) { DG[r * E + e] = 0.0f; DMU[r * E + e] = 0.0f; part2[r * E + e] = 0.0; }
      continue;
    }
    const double y = (double)Y[r];
    double mx = ex_ninf_d();
    for (i64 e = 0; e < E; e++) {
      const double g = (double)Gt[r * E + e];
      if (g > 0.0) {
        const double v = ex_log_d(g) + ex_mix_logn(y, (double)MU[r * E + e], (double)LV[e]);
        mx = v > mx ? v : mx;
      }
    }
    double s = 0.0;
    for (i64 e = 0; e < E; e++) {
      const double g = (double)Gt[r * E + e];
      if (g > 0.0) s += (double)ex_expf((float)(ex_log_d(g) + ex_mix_logn(y, (double)MU[r * E + e], (double)LV[e]) - mx));
    }
    const double logp = mx + ex_log_d(s);
    partial[r] = -logp;
    if (!GRAD) continue;
    const double scale = (double)dloss[0] / (double)valid[0];
    for (i64 e = 0; e < E; e++) {
      const double mu = (double)MU[r * E + e];
      const double n = (double)ex_expf((float)(ex_mix_logn(y, mu, (double)LV[e]) - logp));
      const double resp = (double)Gt[r * E + e] * n;
      const double d = y - mu;
      const double v = (double)ex_expf(LV[e]);
      DG[r * E + e] = (float)(-scale * n);
      DMU[r * E + e] = (float)(-scale * resp * d / v);
      part2[r * E + e] = scale * resp * (0.5 - d * d / (2.0 * v));
    }
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_mixture_loss_rows(const float* Gt, const float* MU, const float* LV, const float* Y, const i32* mask,
    const i32* valid, double* partial, i64 B, i64 E) {
  ex_mixture_rows<0>(Gt, MU, LV, Y, mask, valid, Gt, (float*)0, (float*)0, partial, partial, B, E);
}

extern "C" __global__ void __launch_bounds__(256) ex_mixture_grad_rows(const float* Gt, const float* MU, const float* LV, const float* Y, const i32* mask,
    const i32* valid, const float* dloss, float* DG, float* DMU, double* partial, double* part2, i64 B, i64 E) {
  ex_mixture_rows<1>(Gt, MU, LV, Y, mask, valid, dloss, DG, DMU, partial, part2, B, E);
}

extern "C" __global__ void __launch_bounds__(256) ex_mixture_dlv(const double* part2, float* DLV, i64 B, i64 E) {
  for (i64 e = ex_gtid(); e < E; e += ex_gstride()) {
    double s = 0.0;
    for (i64 r = 0; r < B; r++) s += part2[r * E + e];
    DLV[e] = (float)s;
  }
}
`)
	for _, grad := range []bool{false, true} {
		op := "mixture_nll"
		if grad {
			op += "_grad"
		}
		register(op, func(g *gen) error { return genMixture(g, grad) })
	}
}

func genMixture(g *gen, grad bool) error {
	gi := 0
	if grad {
		gi = 1
	}
	t := g.inType(gi)
	B, E := int64(t.Shape[0]), int64(t.Shape[1])
	g.use("mixture")
	g.use("loss")
	valid := scratchArg(g.reserve(4))
	partial := scratchArg(g.reserve(8 * max(B, 1)))
	if B == 0 {
		if !grad {
			if err := g.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;")); err != nil {
				return err
			}
			g.emit("ex_fill", dim(1), dim(blockThreads), g.out(0), f32Arg(0), i64Arg(1))
		}
		return nil
	}
	in := func(i int) Arg { return g.in(gi + i) }
	grid := dim(streamChoice(B).Int("grid", 1))
	g.emit("ex_count_nonneg", dim(1), dim(blockThreads), in(4), valid, i64Arg(B))
	if !grad {
		g.emit("ex_mixture_loss_rows", grid, dim(blockThreads), in(0), in(1), in(2), in(3), in(4), valid, partial, i64Arg(B), i64Arg(E))
		g.emit("ex_rows_final", dim(1), dim(blockThreads), partial, valid, g.out(0), i64Arg(B))
		return nil
	}
	part2 := scratchArg(g.reserve(8 * B * max(E, 1)))
	g.emit("ex_mixture_grad_rows", grid, dim(blockThreads), in(0), in(1), in(2), in(3), in(4), valid, g.in(0), g.out(0), g.out(1), partial, part2, i64Arg(B), i64Arg(E))
	if E > 0 {
		g.emit("ex_mixture_dlv", dim(1), dim(blockThreads), part2, g.out(2), i64Arg(B), i64Arg(E))
	}
	return nil
}
