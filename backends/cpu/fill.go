package cpu

func init() {
	// fill has no inputs; it rewrites its output on every run because the
	// memory planner may reuse the buffer between runs.
	register("fill", false, func(b *binder) (kernel, error) {
		v := b.f32Attr("value", 0)
		return newUnary(b, func(y, _ []float32) {
			for i := range y {
				y[i] = v
			}
		}, grainCheap), nil
	})
}
