package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// reduce_sum views x as [outer, d, inner] and sums over d in float64, like
// the CPU backend. Each output has one owner, so the result does not depend
// on the launch shape:
//   - rows (inner == 1, summing contiguous runs): a warp per output,
//     lane-strided partial sums combined by a butterfly;
//   - cols (inner > 1, e.g. a bias gradient): a thread per output, reading
//     down a column; neighbouring threads read neighbouring columns.
func init() {
	addFamily("reduce", nil, `extern "C" __global__ void __launch_bounds__(256) ex_reduce_rows(const float* X, float* Y, i64 rows, i64 d) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= rows) return;
  const float* x = X + r * d;
  double s = 0.0;
  for (i64 j = lane; j < d; j += 32) s += (double)x[j];
  s = ex_warp_sum_d(s);
  if (lane == 0) Y[r] = (float)s;
}

extern "C" __global__ void __launch_bounds__(256) ex_reduce_cols(const float* X, float* Y, i64 d, i64 inner, i64 n) {
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    const i64 o = i / inner, j = i % inner;
    const float* x = X + o * d * inner + j;
    double s = 0.0;
    for (i64 r = 0; r < d; r++) s += (double)x[r * inner];
    Y[i] = (float)s;
  }
}
`)
	register("reduce_sum", genReduceSum)
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		outer, _, inner := reduceDims(plan.Buffers[k.Ins[0]].Type, k.Attrs.Int("axis", 0))
		if inner == 1 {
			return ir.Attrs{"variant": "rows", "block": blockThreads, "grid": int(max((outer+rowsPerBlock-1)/rowsPerBlock, 1))}
		}
		c := streamChoice(outer * inner)
		c["variant"] = "cols"
		return c
	}, "reduce_sum")
}

func reduceDims(t ir.Type, axis int) (outer, d, inner int64) {
	outer, inner = 1, 1
	for _, n := range t.Shape[:axis] {
		outer *= int64(n)
	}
	for _, n := range t.Shape[axis+1:] {
		inner *= int64(n)
	}
	return outer, int64(t.Shape[axis]), inner
}

func genReduceSum(g *gen) error {
	t := g.inType(0)
	if t.DType != ir.F32 {
		return fmt.Errorf("reduce_sum of %s: the cuda backend sums f32 only", t)
	}
	outer, d, inner := reduceDims(t, g.attrs().Int("axis", 0))
	g.use("reduce")
	la := g.launchAttrs()
	if outer*inner == 0 {
		return nil
	}
	switch la.Str("variant", "") {
	case "rows":
		if inner != 1 {
			return fmt.Errorf("launch variant rows needs inner size 1, have %d", inner)
		}
		g.emit("ex_reduce_rows", dim(int((outer+rowsPerBlock-1)/rowsPerBlock)), dim(blockThreads), g.in(0), g.out(0), i64Arg(outer), i64Arg(d))
	case "cols":
		n := outer * inner
		g.emit("ex_reduce_cols", dim(la.Int("grid", 1)), dim(blockThreads), g.in(0), g.out(0), i64Arg(d), i64Arg(inner), i64Arg(n))
	default:
		return fmt.Errorf("unknown reduce_sum launch variant %q (want rows or cols)", la.Str("variant", ""))
	}
	return nil
}
