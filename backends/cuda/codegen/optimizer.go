package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Optimizer updates and the learning-rate schedule, as the CPU backend
// computes them: per-element arithmetic in float32, per-launch scalars (bias
// corrections, the schedule) in float64 with Go's rounding. Updates usually
// run in place (w' is w): a thread reads every input of element i before it
// writes element i of any output.
func init() {
	addFamily("optimizer", []string{"math"}, `template <int NESTEROV>
EX_DEV void ex_sgd(const float* W, const float* G, const float* V, const float* lr, float* Wo, float* Vo,
                   float m, float wd, i64 n) {
  const float rate = lr[0];
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    const float wi = W[i];
    const float gi = G[i] + wd * wi;
    const float vi = m * V[i] + gi;
    const float u = NESTEROV ? gi + m * vi : vi;
    Wo[i] = wi - rate * u;
    Vo[i] = vi;
  }
}

// AdamW: m' = b1 m + (1-b1) g; v' = b2 v + (1-b2) g^2;
// w' = w - lr ((m'/(1-b1^t)) / (sqrt(v'/(1-b2^t)) + eps) + wd w), t = step+1.
// Thread 0 of each block computes the bias corrections once.
extern "C" __global__ void __launch_bounds__(256) ex_adamw(const float* W, const float* G, const float* M, const float* V,
    const float* lr, const i32* step, float* Wo, float* Mo, float* Vo, double beta1, double beta2, float eps, float wd,
    i32* status, i32 code, i64 n) {
  __shared__ float sc[3];
  const i32 st = step[0];
  if (st < 0) {
    if (ex_gtid() == 0) ex_fail(status, code);
    return;
  }
  if (ex_tid_x() == 0) {
    sc[0] = lr[0];
    sc[1] = (float)ex_ddiv(1.0, ex_dsub(1.0, ex_powi_d(beta1, (i64)st + 1)));
    sc[2] = (float)ex_ddiv(1.0, ex_dsub(1.0, ex_powi_d(beta2, (i64)st + 1)));
  }
  ex_sync();
  const float rate = sc[0], ibc1 = sc[1], ibc2 = sc[2];
  const float b1 = (float)beta1, b2 = (float)beta2, c1 = (float)(1.0 - beta1), c2 = (float)(1.0 - beta2);
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    const float wi = W[i], gi = G[i];
    const float mi = b1 * M[i] + c1 * gi;
    const float vi = b2 * V[i] + c2 * gi * gi;
    const float den = ex_fsqrt(vi * ibc2) + eps;
    Wo[i] = wi - rate * ((mi * ibc1) / den + wd * wi);
    Mo[i] = mi;
    Vo[i] = vi;
  }
}

// The learning rate at a step: linear warmup over the first warmup steps,
// then constant or a cosine decay from lr to min_lr over total - warmup
// steps (runner's lrAt in float64, rounded once).
template <int COSINE>
EX_DEV void ex_lr(const i32* step, float* out, double lr, double minlr, i32 warmup, i32 total) {
  if (ex_tid_x() != 0 || ex_bid_x() != 0) return;
  const double s = (double)step[0];
  double r = lr;
  if (warmup > 0 && s < (double)warmup) {
    r = ex_ddiv(ex_dmul(lr, ex_dadd(s, 1.0)), (double)warmup);
  } else if (COSINE) {
    const i32 span = total - warmup > 1 ? total - warmup : 1;
    double p = ex_ddiv(ex_dsub(s, (double)warmup), (double)span);
    p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    r = ex_dadd(minlr, ex_dmul(ex_dmul(ex_dsub(lr, minlr), 0.5), ex_dadd(1.0, ex_cos_d(ex_dmul(3.1415926535897931, p)))));
  }
  out[0] = (float)r;
}
`)
	register("sgd", func(g *gen) error {
		g.use("optimizer")
		nest := g.attrs().Bool("nesterov", false)
		name := "ex_sgd_plain"
		if nest {
			name = "ex_sgd_nesterov"
		}
		if err := g.entry(name, fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(const float* W, const float* G, const float* V, const float* lr, float* Wo, float* Vo, float m, float wd, i64 n) {
  ex_sgd<%d>(W, G, V, lr, Wo, Vo, m, wd, n);
}
`, name, b2i(nest))); err != nil {
			return err
		}
		a := g.attrs()
		return g.stream(name, g.in(0), g.in(1), g.in(2), g.in(3), g.out(0), g.out(1),
			f32Arg(float32(a.Float("momentum", 0))), f32Arg(float32(a.Float("weight_decay", 0))))
	})
	register("adamw", func(g *gen) error {
		g.use("optimizer")
		a := g.attrs()
		return g.stream("ex_adamw", g.in(0), g.in(1), g.in(2), g.in(3), g.in(4), g.in(5), g.out(0), g.out(1), g.out(2),
			f64Arg(a.Float("beta1", 0.9)), f64Arg(a.Float("beta2", 0.999)), f32Arg(float32(a.Float("eps", 1e-8))),
			f32Arg(float32(a.Float("weight_decay", 0))), statusArg(), g.code(ReasonStep))
	})
	register("lr_schedule", func(g *gen) error {
		g.use("optimizer")
		a := g.attrs()
		cosine := a.Str("kind", "constant") == "cosine"
		name := "ex_lr_constant"
		if cosine {
			name = "ex_lr_cosine"
		}
		if err := g.entry(name, fmt.Sprintf(`extern "C" __global__ void %s(const i32* step, float* out, double lr, double minlr, i32 warmup, i32 total) {
  ex_lr<%d>(step, out, lr, minlr, warmup, total);
}
`, name, b2i(cosine))); err != nil {
			return err
		}
		g.emit(name, dim(1), dim(1), g.in(0), g.out(0), f64Arg(a.Float("lr", 0)), f64Arg(a.Float("min_lr", 0)),
			i32Arg(a.Int("warmup", 0)), i32Arg(a.Int("total", 0)))
		return nil
	})
	chooseFor(firstOutElems, "sgd", "adamw")
	chooseFor(func(*ir.Plan, *ir.Kernel) ir.Attrs { return ir.Attrs{"block": 1, "grid": 1} }, "lr_schedule")
}
