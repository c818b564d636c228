package kerneltest

import "github.com/expc-dev/expc/ir"

// Cases of contrastive_xent_fused: each objective and each optional operand
// (temperature scalar or per row, labels, guides) at least once.
func init() {
	base := extraCases
	extraCases = func() []Case {
		a, one := f32(64, 24), Fill{Kind: "one"}
		pos := Fill{Kind: "positive"}
		at := func(kv ...any) ir.Attrs {
			out := ir.Attrs{"tile": 16}
			for i := 0; i < len(kv); i += 2 {
				out[kv[i].(string)] = kv[i+1]
			}
			return out
		}
		return append(base(),
			Case{Name: "contrastive_xent_fused nt_xent", Op: "contrastive_xent_fused", Ins: []ir.Type{a, scalarF}, Fill: []Fill{{"normal", 1}, one},
				Attrs: at("objective", "nt_xent", "normalize", true, "inv_temperature", 10.0), Tol: 1e-5},
			Case{Name: "contrastive_xent_fused decoupled raw", Op: "contrastive_xent_fused", Ins: []ir.Type{a, scalarF}, Fill: []Fill{{"normal", 0.2}, one},
				Attrs: at("objective", "decoupled", "inv_temperature", 2.0), Tol: 1e-5},
			Case{Name: "contrastive_xent_fused dual tau", Op: "contrastive_xent_fused", Ins: []ir.Type{a, a, scalarF, scalarF},
				Fill: []Fill{{"normal", 1}, {"normal", 1}, pos, one}, Attrs: at("objective", "dual", "normalize", true, "tau_input", true), Tol: 1e-5},
			Case{Name: "contrastive_xent_fused supcon dtau", Op: "contrastive_xent_fused", Ins: []ir.Type{a, f32(64), i32(64), scalarF},
				Fill:  []Fill{{"normal", 1}, pos, {Kind: "int"}, one}, // labels in [0, 100)
				Attrs: at("objective", "supcon", "normalize", true, "tau_input", true, "want_dtau", true, "classes", 100), Tol: 1e-5},
			Case{Name: "contrastive_xent_fused guided hard", Op: "contrastive_xent_fused", Ins: []ir.Type{a, f32(64, 8), scalarF},
				Fill: []Fill{{"normal", 1}, {"normal", 1}, one}, Attrs: at("objective", "nt_xent", "normalize", true, "inv_temperature", 5.0, "guided", true, "hard_k", 7), Tol: 1e-5},
		)
	}
}
