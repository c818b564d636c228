package kerneltest

import "github.com/expc-dev/expc/ir"

// Cases of the sequence-model ops (ir/optable_seq.go) that have a CUDA
// kernel. token_ids reads ids from normal floats: the truncation and the
// negative ids are what it defines.
func init() {
	base := extraCases
	extraCases = func() []Case {
		ids := Fill{"labels", 50} // a few -1 (no token row)
		x := f32(96, 40)
		return append(base(),
			Case{Name: "token_ids shift 0", Op: "token_ids", Ins: []ir.Type{f32(8, 17)}, Fill: []Fill{{"normal", 30}}},
			Case{Name: "token_ids shift 1 masked", Op: "token_ids", Ins: []ir.Type{f32(8, 17), i32(8)}, Fill: []Fill{{"normal", 30}, {"labels", 2}},
				Attrs: ir.Attrs{"shift": 1}},
			Case{Name: "embed", Op: "embed", Ins: []ir.Type{i32(96), f32(50, 40), f32(16, 40)}, Fill: []Fill{ids}},
			Case{Name: "embed_grad", Op: "embed_grad", Ins: []ir.Type{x, i32(96)}, Fill: []Fill{{"normal", 1}, ids},
				Attrs: ir.Attrs{"vocab": 50, "seq": 16}},
			Case{Name: "layer_norm", Op: "layer_norm", Ins: []ir.Type{x, f32(40), f32(40)}, Tol: 1e-5},
			Case{Name: "layer_norm_grad", Op: "layer_norm_grad", Ins: []ir.Type{x, x, f32(40)}, Attrs: ir.Attrs{"eps": 1e-3}, Tol: 1e-5},
			Case{Name: "attention causal", Op: "attention", Ins: []ir.Type{f32(48, 32), f32(48, 32), f32(48, 32)},
				Attrs: ir.Attrs{"heads": 4, "seq": 12, "causal": true}, Tol: 1e-5},
			Case{Name: "attention", Op: "attention", Ins: []ir.Type{f32(48, 32), f32(48, 32), f32(48, 32)},
				Attrs: ir.Attrs{"heads": 2, "seq": 24}, Tol: 1e-5},
			Case{Name: "attention_grad causal", Op: "attention_grad", Ins: []ir.Type{f32(48, 32), f32(48, 32), f32(48, 32), f32(48, 32)},
				Attrs: ir.Attrs{"heads": 4, "seq": 12, "causal": true}, Tol: 1e-5},
			Case{Name: "mixture_nll", Op: "mixture_nll", Ins: []ir.Type{f32(96, 4), f32(96, 4), f32(4), f32(96, 1), i32(96)},
				Fill: []Fill{{Kind: "positive"}, {"normal", 1}, {"normal", 0.3}, {"normal", 1}, {"labels", 2}}, Tol: 1e-5},
			Case{Name: "mixture_nll_grad", Op: "mixture_nll_grad", Ins: []ir.Type{scalarF, f32(96, 4), f32(96, 4), f32(4), f32(96, 1), i32(96)},
				Fill: []Fill{{Kind: "one"}, {Kind: "positive"}, {"normal", 1}, {"normal", 0.3}, {"normal", 1}, {"labels", 2}}, Tol: 1e-5},
			// anneal is a MoE op (a scalar schedule), kept here as the one MoE op with a kernel.
			Case{Name: "anneal cosine", Op: "anneal", Ins: []ir.Type{scalarI}, Fill: []Fill{{"step", 37}},
				Attrs: ir.Attrs{"kind": "cosine", "start": 2.0, "end": 0.25, "steps": 100}},
			Case{Name: "anneal linear", Op: "anneal", Ins: []ir.Type{scalarI}, Fill: []Fill{{"step", 37}},
				Attrs: ir.Attrs{"kind": "linear", "start": 2.0, "end": 0.25, "steps": 100}},
			Case{Name: "anneal exponential", Op: "anneal", Ins: []ir.Type{scalarI}, Fill: []Fill{{"step", 37}},
				Attrs: ir.Attrs{"kind": "exponential", "start": 2.0, "end": 0.25, "steps": 100}},
			Case{Name: "sum_all", Op: "sum_all", Ins: []ir.Type{f32(70, 300)}},
			Case{Name: "broadcast_scalar", Op: "broadcast_scalar", Ins: []ir.Type{scalarF}, Attrs: ir.Attrs{"shape": []int{30, 7}}},
		)
	}
}
