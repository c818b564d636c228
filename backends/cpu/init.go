package cpu

import (
	"fmt"

	"github.com/expc-dev/expc/backends/rng"
	"github.com/expc-dev/expc/ir"
)

// initParams fills parameters from plan.Inits with the shared counter-based
// RNG, so the same plan starts from the same bytes on every backend:
//
//	he_normal:      w[i] = float32(float64(rng.Normal(seed, i)) · scale)
//	xavier_uniform: w[i] = float32((2·float64(rng.Uniform(seed, i)) − 1) · scale)
//	zeros:          w[i] = 0
//
// where i is the element's flat row-major index within the buffer.
func (x *Executable) initParams() error {
	for _, in := range x.plan.Inits {
		if in.Buffer < 0 || in.Buffer >= len(x.plan.Buffers) {
			return fmt.Errorf("init of buffer %d: no such buffer", in.Buffer)
		}
		buf := &x.plan.Buffers[in.Buffer]
		w := x.f32[in.Buffer]
		if buf.Type.DType != ir.F32 {
			return fmt.Errorf("init %s of buffer %s: want an f32 buffer, it is %s", in.Kind, buf.Name, buf.Type)
		}
		var fill func(dst []float32, seed, offset uint64, scale float64)
		switch in.Kind {
		case "he_normal":
			fill = rng.FillNormal
		case "xavier_uniform":
			fill = rng.FillUniform
		case "zeros":
			clear(w)
			continue
		default:
			return fmt.Errorf("init of buffer %s: unknown initializer %q (want he_normal, xavier_uniform or zeros)", buf.Name, in.Kind)
		}
		// Draws are pure functions of the index, so any split gives the
		// same bytes; a large model's init takes seconds on one core.
		c := split(len(w), grainExpensive, x.pool.Workers(), lineFloats)
		x.pool.Run(c.tasks, func(_, t int) {
			lo, hi := c.bounds(t)
			fill(w[lo:hi], in.Seed, uint64(lo), in.Scale)
		})
	}
	return nil
}
