package kerneltest

import "github.com/expc-dev/expc/ir"

// Cases of the unfused contrastive ops (ir/optable_contrastive.go).
func init() {
	base := extraCases
	extraCases = func() []Case {
		cs := base()
		x := f32(96, 40)
		s := f32(64, 64)
		cs = append(cs,
			Case{Name: "l2_normalize", Op: "l2_normalize", Ins: []ir.Type{x}},
			Case{Name: "l2_normalize_grad", Op: "l2_normalize_grad", Ins: []ir.Type{x, x}, Tol: 1e-5},
		)
		for _, obj := range []string{"nt_xent", "decoupled", "dual"} {
			cs = append(cs, Case{Name: "contrastive_mask " + obj, Op: "contrastive_mask", Ins: []ir.Type{s}, Attrs: ir.Attrs{"objective": obj}})
		}
		cs = append(cs,
			Case{Name: "contrastive_mask hard guided", Op: "contrastive_mask", Ins: []ir.Type{s, s}, Attrs: ir.Attrs{"objective": "nt_xent", "hard_k": 9, "guided": true}},
			Case{Name: "contrastive_mask supcon", Op: "contrastive_mask", Ins: []ir.Type{s, i32(64)}, Attrs: ir.Attrs{"objective": "supcon", "classes": 100}}, // labels in [0, 100)
		)
		// The mask and positives are random weights here: soft_xent is
		// defined for any non-negative weights.
		pos := Fill{Kind: "positive"}
		cs = append(cs,
			Case{Name: "soft_xent", Op: "soft_xent", Ins: []ir.Type{s, s, s}, Fill: []Fill{{"normal", 3}, pos, pos}, Tol: 1e-5},
			Case{Name: "soft_xent_grad", Op: "soft_xent_grad", Ins: []ir.Type{s, s, s, scalarF}, Fill: []Fill{{"normal", 3}, pos, pos, {Kind: "one"}}, Tol: 1e-5},
		)
		return cs
	}
}
