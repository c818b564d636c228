package codegen

// Row movement of the unfused mixture-of-experts graph (ir/optable_moe.go),
// as backends/cpu/moe_rows.go defines it: gather, gate_take and scale_rows
// are grid-stride loops over the output; scatter gives each column one
// thread that adds the rows in index order (the CPU's order, so the sums
// are the CPU's bit for bit); gate_put is one block that zeroes the output
// and then adds in index order on one thread (C values, a tiny loop);
// row_dot gives each row one thread with the CPU's two float64 partial
// sums (even and odd columns).
func init() {
	addFamily("moe_rows", nil, `extern "C" __global__ void __launch_bounds__(256) ex_moe_scatter(const float* Y, const i32* idx, float* O, i64 C, i64 rows, i64 d) {
  for (i64 j = ex_gtid(); j < d; j += ex_gstride()) {
    for (i64 t = 0; t < rows; t++) O[t * d + j] = 0.0f;
    for (i64 i = 0; i < C; i++) {
      const i32 t = idx[i];
      if (t >= 0 && t < rows) O[(i64)t * d + j] += Y[i * d + j];
    }
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_moe_gate_put(const float* V, const i32* idx, float* O, i64 C, i64 n, i64 E, i64 e) {
  for (i64 i = ex_tid_x(); i < n; i += ex_bdim_x()) O[i] = 0.0f;
  ex_sync();
  if (ex_tid_x() != 0) return;
  for (i64 i = 0; i < C; i++) {
    const i32 t = idx[i];
    if (t >= 0 && (i64)t * E + e < n) O[(i64)t * E + e] += V[i];
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_moe_row_dot(const float* A, const float* B, float* O, i64 rows, i64 d) {
  for (i64 r = ex_gtid(); r < rows; r += ex_gstride()) {
    const float* a = A + r * d;
    const float* b = B + r * d;
    double s0 = 0.0, s1 = 0.0;
    i64 i = 0;
    for (; i + 2 <= d; i += 2) {
      s0 = ex_dadd(s0, ex_dmul((double)a[i], (double)b[i]));
      s1 = ex_dadd(s1, ex_dmul((double)a[i + 1], (double)b[i + 1]));
    }
    if (i < d) s0 = ex_dadd(s0, ex_dmul((double)a[i], (double)b[i]));
    O[r] = (float)ex_dadd(s0, s1);
  }
}
`)
	register("moe_gather", func(g *gen) error {
		x := g.inType(0)
		return g.streamWith("ex_moe_gather", "const float* X, const i32* idx, float* Y, i64 d, i64 T",
			"const i32 t = idx[i / d]; Y[i] = (t >= 0 && t < T) ? X[(i64)t * d + i % d] : 0.0f;",
			g.in(0), g.in(1), g.out(0), i64Arg(int64(max(x.Shape[1], 1))), i64Arg(int64(x.Shape[0])))
	})
	register("moe_gate_take", func(g *gen) error {
		G := g.inType(0)
		return g.streamWith("ex_moe_gate_take", "const float* G, const i32* idx, float* Y, i64 T, i64 E, i64 e",
			"const i32 t = idx[i]; Y[i] = (t >= 0 && t < T) ? G[(i64)t * E + e] : 0.0f;",
			g.in(0), g.in(1), g.out(0), i64Arg(int64(G.Shape[0])), i64Arg(int64(G.Shape[1])), i64Arg(int64(g.attrs().Int("expert", 0))))
	})
	register("moe_scale_rows", func(g *gen) error {
		return g.streamWith("ex_moe_scale_rows", "const float* Y, const float* W, float* O, i64 d",
			"O[i] = Y[i] * W[i / d];", g.in(0), g.in(1), g.out(0), i64Arg(int64(max(g.inType(0).Shape[1], 1))))
	})
	register("moe_scatter", func(g *gen) error {
		y, o := g.inType(0), g.outType(0)
		g.use("moe_rows")
		if d := y.Shape[1]; d > 0 {
			g.emit("ex_moe_scatter", dim(streamChoice(int64(d)).Int("grid", 1)), dim(blockThreads), g.in(0), g.in(1), g.out(0),
				i64Arg(int64(y.Shape[0])), i64Arg(int64(o.Shape[0])), i64Arg(int64(d)))
		}
		return nil
	})
	register("moe_gate_put", func(g *gen) error {
		o := g.outType(0)
		g.use("moe_rows")
		g.emit("ex_moe_gate_put", dim(1), dim(blockThreads), g.in(0), g.in(1), g.out(0),
			i64Arg(int64(g.inType(0).Shape[0])), i64Arg(o.Shape.Elems()), i64Arg(int64(o.Shape[1])), i64Arg(int64(g.attrs().Int("expert", 0))))
		return nil
	})
	register("moe_row_dot", func(g *gen) error {
		a := g.inType(0)
		g.use("moe_rows")
		if rows := a.Shape[0]; rows > 0 {
			g.emit("ex_moe_row_dot", dim(streamChoice(int64(rows)).Int("grid", 1)), dim(blockThreads), g.in(0), g.in(1), g.out(0),
				i64Arg(int64(rows)), i64Arg(int64(a.Shape[1])))
		}
		return nil
	})
	chooseFor(firstOutElems, "moe_gather", "moe_gate_take", "moe_scale_rows")
}
