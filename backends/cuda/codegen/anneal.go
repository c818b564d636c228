package codegen

import "fmt"

// anneal (ir/optable_moe.go): a scalar knob at a step, as backends/cpu's
// anneal computes it in float64 (ir/interp.Anneal is the reference):
// constant, linear and cosine round exactly as Go does (inline-PTX float64
// arithmetic and mathlib's Go-exact cosine); exponential's power goes
// through float32 exp (no float64 exp without libdevice), so it may differ
// from the CPU in the float32 result's last bit.
func init() {
	addFamily("anneal", []string{"math"}, `extern "C" __global__ void __launch_bounds__(1) ex_anneal(const i32* stepp, float* out, i32 kind, double start, double end, i64 steps) {
  double v = start;
  if (kind != 0 && steps > 0) {
    double p = ex_ddiv((double)stepp[0], (double)steps);
    p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    if (kind == 1) v = ex_dadd(start, ex_dmul(ex_dsub(end, start), p));
    else if (kind == 2) v = ex_dadd(end, ex_dmul(ex_dmul(ex_dsub(start, end), 0.5), ex_dadd(1.0, ex_cos_d(ex_dmul(3.141592653589793, p)))));
    else v = ex_dmul(start, (double)ex_expf((float)ex_dmul(p, ex_log_d(ex_ddiv(end, start)))));
  }
  out[0] = (float)v;
}
`)
	register("anneal", func(g *gen) error {
		a := g.attrs()
		kind, ok := map[string]int{"constant": 0, "linear": 1, "cosine": 2, "exponential": 3}[a.Str("kind", "constant")]
		if !ok {
			return fmt.Errorf("unknown anneal kind %q", a.Str("kind", ""))
		}
		g.use("anneal")
		g.emit("ex_anneal", dim(1), dim(1), g.in(0), g.out(0), i32Arg(kind), f64Arg(a.Float("start", 1)), f64Arg(a.Float("end", 1)), i64Arg(int64(a.Int("steps", 0))))
		return nil
	})
}
