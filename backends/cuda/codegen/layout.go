package codegen

// Data movement added with the contrastive and sequence ops: scaling rows,
// gathering and scattering per-example values, and column slices. All are
// grid-stride loops over the output; scatter_add gives each output one
// thread that adds its sources in index order, so the sum is deterministic
// (and in the CPU backend's order).
func init() {
	register("row_scale", func(g *gen) error {
		x := g.inType(0)
		perRow := int64(0) // stride of s: 0 for a scalar, 1 per row
		if g.inType(1).Rank() == 1 {
			perRow = 1
		}
		return g.streamWith("ex_row_scale", "const float* X, const float* S, float* Y, i64 cols, i64 per_row",
			"Y[i] = X[i] * S[(i / cols) * per_row];", g.in(0), g.in(1), g.out(0), i64Arg(int64(max(x.Shape[1], 1))), i64Arg(perRow))
	})
	register("gather", func(g *gen) error {
		return g.streamWith("ex_gather", "const float* T, const i32* idx, float* Y, i64 k",
			"const i32 j = idx[i]; Y[i] = (j >= 0 && j < k) ? T[j] : 0.0f;", g.in(0), g.in(1), g.out(0), i64Arg(g.inType(0).Shape.Elems()))
	})
	register("scatter_add", func(g *gen) error {
		return g.streamWith("ex_scatter_add", "const float* X, const i32* idx, float* Y, i64 r",
			"float s = 0.0f; for (i64 t = 0; t < r; t++) if (idx[t] == i) s += X[t]; Y[i] = s;",
			g.in(0), g.in(1), g.out(0), i64Arg(g.inType(0).Shape.Elems()))
	})
	register("slice_cols", func(g *gen) error {
		w, c := g.inType(0).Shape[1], g.outType(0).Shape[1]
		return g.streamWith("ex_slice_cols", "const float* X, float* Y, i64 w, i64 c, i64 start",
			"Y[i] = X[(i / c) * w + start + i % c];", g.in(0), g.out(0), i64Arg(int64(w)), i64Arg(int64(max(c, 1))), i64Arg(int64(g.attrs().Int("start", 0))))
	})
	register("pad_cols", func(g *gen) error {
		c, w := g.inType(0).Shape[1], g.outType(0).Shape[1]
		return g.streamWith("ex_pad_cols", "const float* X, float* Y, i64 c, i64 w, i64 start",
			"const i64 j = i % w - start; Y[i] = (j >= 0 && j < c) ? X[(i / w) * c + j] : 0.0f;",
			g.in(0), g.out(0), i64Arg(int64(c)), i64Arg(int64(max(w, 1))), i64Arg(int64(g.attrs().Int("start", 0))))
	})
	chooseFor(firstOutElems, "row_scale", "gather", "scatter_add", "slice_cols", "pad_cols")
}

// streamWith adds a grid-stride entry point and launches it.
func (g *gen) streamWith(name, params, body string, args ...Arg) error {
	if err := g.entry(name, streamEntry(name, params, body)); err != nil {
		return err
	}
	return g.stream(name, args...)
}
