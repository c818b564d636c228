package ir

// sparseOps adds the sparse training ops to the round-trip module (see
// testModule): x is f32[4,6], w the f32[6,3] weight, bias f32[3], step the
// i32 step.
func sparseOps(b *Builder, x, w, bias, step *Value) {
	mask := b.Param("fc.mask", Tensor(F32, 6, 3), RoleState)
	gen := b.Param("fc.mask.gen", Scalar(I32), RoleState)
	b.Must("mask_update", []*Value{w, mask, gen, step}, Attrs{"pattern": "nm", "n": 1, "m": 2, "init": "magnitude",
		"schedule": "gradual", "density": 0.5, "initial_density": 1.0, "start": 10, "end": 100, "every": 10, "dense_at": 200, "seed": 7},
		"w.masked", "mask.new", "gen.new")
	y := b.V("masked_matmul", Attrs{"kernel": "csr", "pattern": "unstructured", "density": 0.25, "dense_above": 0.3, "act": "relu"},
		"h", x, w, mask, gen, bias)
	b.V("masked_matmul", Attrs{"kernel": "block", "pattern": "block", "block": []int{2, 3}, "transpose_b": true, "act": "relu"},
		"dx", y, w, mask, gen, x)
	b.V("masked_matmul_dw", Attrs{"kernel": "nm", "pattern": "nm", "n": 1, "m": 2, "density": 0.5}, "dw", x, y, mask, gen)
}
