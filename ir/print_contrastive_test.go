package ir

// contrastiveOps adds every contrastive op to the round-trip module (see
// testModule): x is f32[4,6], y i32[4], one the f32 scalar 1.
func contrastiveOps(b *Builder, x, y, one *Value) {
	z := b.V("l2_normalize", nil, "z", x)
	b.V("l2_normalize_grad", nil, "dz", z, x)
	sim := b.V("matmul", Attrs{"transpose_b": true}, "sim", z, z)
	invTau := b.V("fill", Attrs{"shape": []int{4}, "value": 2.0}, "invtau")
	lg := b.V("row_scale", nil, "lg", sim, invTau)
	cm := b.Must("contrastive_mask", []*Value{sim, y}, Attrs{"objective": "supcon", "classes": 3}, "mask", "pos")
	b.Must("contrastive_mask", []*Value{sim, sim}, Attrs{"objective": "nt_xent", "hard_k": 1, "guided": true}, "mask", "pos")
	b.V("soft_xent", nil, "closs", lg, cm.Results[0], cm.Results[1])
	b.V("soft_xent_grad", nil, "dlg", lg, cm.Results[0], cm.Results[1], one)
	table := b.V("fill", Attrs{"shape": []int{9}, "value": 0.5}, "table")
	tau := b.V("gather", nil, "tau", table, y)
	b.V("scatter_add", Attrs{"size": 9}, "dtable", tau, y)
	b.Must("contrastive_xent_fused", []*Value{x, one}, Attrs{"objective": "nt_xent", "tile": 2, "inv_temperature": 10.0, "normalize": true},
		"closs2", "dx", "aux")
	b.Must("contrastive_xent_fused", []*Value{x, x, invTau, one}, Attrs{"objective": "dual", "tile": 256, "tau_input": true},
		"closs3", "da", "db")
}
