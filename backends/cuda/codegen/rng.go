package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Parameter initialisation with backends/rng's counter-based generator, so
// a seeded plan starts from the same bytes on the GPU as on the CPU:
//
//	he_normal:      w[i] = float32(float64(rng.Normal(seed, i)) · scale)
//	xavier_uniform: w[i] = float32((2·float64(rng.Uniform(seed, i)) − 1) · scale)
//	zeros:          w[i] = 0
//
// The integer hashing is exact; Normal's float64 log, sqrt and cos are Go's
// (see mathlib.go), rounded exactly, so the draws are bit-identical.
func init() {
	addFamily("rng", []string{"math"}, `#define EX_GAMMA 0x9e3779b97f4a7c15ull

// The splitmix64 finaliser (rng.Mix).
EX_DEV u64 ex_mix(u64 z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// rng.Normal(seed, i) given s = mix(seed): Box-Muller over counters 2i, 2i+1.
EX_DEV float ex_rng_normal(u64 s, u64 i) {
  const double u1 = ex_dmul((double)((ex_mix(s + (2 * i + 1) * EX_GAMMA) >> 40) + 1), 5.9604644775390625e-08);
  const double u2 = ex_dmul((double)(ex_mix(s + (2 * i + 2) * EX_GAMMA) >> 40), 5.9604644775390625e-08);
  return (float)ex_dmul(ex_dsqrt(ex_dmul(-2.0, ex_log_d(u1))), ex_cos_d(ex_dmul(6.2831853071795862, u2)));
}

// rng.Uniform(seed, i) given s = mix(seed), in [0, 1).
EX_DEV float ex_rng_uniform(u64 s, u64 i) {
  return (float)(ex_mix(s + (i + 1) * EX_GAMMA) >> 40) * 5.9604644775390625e-08f;
}

extern "C" __global__ void __launch_bounds__(256) ex_init_normal(float* W, u64 seed, double scale, i64 n) {
  const u64 s = ex_mix(seed);
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) W[i] = (float)ex_dmul((double)ex_rng_normal(s, (u64)i), scale);
}

extern "C" __global__ void __launch_bounds__(256) ex_init_uniform(float* W, u64 seed, double bound, i64 n) {
  const u64 s = ex_mix(seed);
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    const double u = (double)ex_rng_uniform(s, (u64)i);
    W[i] = (float)ex_dmul(ex_dsub(ex_dmul(2.0, u), 1.0), bound);
  }
}
`)
}

// inits emits one launch per parameter initializer.
func (b *builder) inits(out *[]Launch) error {
	for _, in := range b.plan.Inits {
		if in.Buffer < 0 || in.Buffer >= len(b.plan.Buffers) {
			return fmt.Errorf("init of buffer %d: no such buffer", in.Buffer)
		}
		buf := &b.plan.Buffers[in.Buffer]
		if buf.Type.DType != ir.F32 {
			return fmt.Errorf("init %s of buffer %s: want an f32 buffer, it is %s", in.Kind, buf.Name, buf.Type)
		}
		n := buf.Type.Shape.Elems()
		grid, block := dim(int(streamChoice(n).Int("grid", 1))), dim(blockThreads)
		w := Arg{Kind: ArgBuffer, Buffer: in.Buffer}
		var l Launch
		switch in.Kind {
		case "he_normal":
			b.use("rng")
			l = Launch{Entry: "ex_init_normal", Args: []Arg{w, u64Arg(in.Seed), f64Arg(in.Scale), i64Arg(n)}}
		case "xavier_uniform":
			b.use("rng")
			l = Launch{Entry: "ex_init_uniform", Args: []Arg{w, u64Arg(in.Seed), f64Arg(in.Scale), i64Arg(n)}}
		case "zeros":
			if err := b.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;")); err != nil {
				return err
			}
			l = Launch{Entry: "ex_fill", Args: []Arg{w, f32Arg(0), i64Arg(n)}}
		default:
			return fmt.Errorf("init of buffer %s: unknown initializer %q (want he_normal, xavier_uniform or zeros)", buf.Name, in.Kind)
		}
		if n == 0 {
			continue
		}
		l.Kernel, l.Op, l.Grid, l.Block = -1, "init", grid, block
		*out = append(*out, l)
		b.comments = append(b.comments, "init "+describe(buf.Name, l))
	}
	return nil
}
