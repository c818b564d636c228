package kerneltest

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

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
		cs := append(base(),
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
		// Sizes the CUDA tile (64) does not divide, and one that the
		// column splits cut unevenly, for each main variant.
		for _, n := range []int{200, 600} {
			a, sz := f32(n, 40), fmt.Sprintf(" %dx40", n)
			cs = append(cs,
				Case{Name: "contrastive_xent_fused nt_xent" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, scalarF}, Fill: []Fill{{"normal", 1}, one},
					Attrs: at("objective", "nt_xent", "normalize", true, "inv_temperature", 10.0), Tol: 1e-5},
				Case{Name: "contrastive_xent_fused decoupled raw" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, scalarF}, Fill: []Fill{{"normal", 0.2}, one},
					Attrs: at("objective", "decoupled", "inv_temperature", 2.0), Tol: 1e-5},
				Case{Name: "contrastive_xent_fused dual tau" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, a, scalarF, scalarF},
					Fill: []Fill{{"normal", 1}, {"normal", 1}, pos, one}, Attrs: at("objective", "dual", "normalize", true, "tau_input", true), Tol: 1e-5},
				Case{Name: "contrastive_xent_fused supcon dtau" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, f32(n), i32(n), scalarF},
					Fill:  []Fill{{"normal", 1}, pos, {Kind: "int"}, one}, // labels in [0, 100)
					Attrs: at("objective", "supcon", "normalize", true, "tau_input", true, "want_dtau", true, "classes", 100), Tol: 1e-5},
				Case{Name: "contrastive_xent_fused nt_xent dtau" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, f32(n), scalarF},
					Fill: []Fill{{"normal", 1}, pos, one}, Attrs: at("objective", "nt_xent", "normalize", true, "tau_input", true, "want_dtau", true), Tol: 1e-5},
			)
			// Guided and hard negatives together at 200; apart at 600, where
			// both at once cost the host emulator minutes.
			hard := func(guided bool) ir.Attrs {
				h := at("objective", "nt_xent", "normalize", true, "inv_temperature", 5.0, "guided", guided, "hard_k", 37)
				if !guided {
					delete(h, "guided")
				}
				return h
			}
			dual, dualName := at("objective", "dual", "inv_temperature", 3.0, "guided", true, "hard_k", 70), "dual guided hard raw"
			if n == 600 {
				delete(dual, "hard_k")
				dualName = "dual guided raw"
				cs = append(cs, Case{Name: "contrastive_xent_fused hard" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, scalarF},
					Fill: []Fill{{"normal", 1}, one}, Attrs: hard(false), Tol: 1e-5})
			} else {
				cs = append(cs, Case{Name: "contrastive_xent_fused guided hard" + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, f32(n, 8), scalarF},
					Fill: []Fill{{"normal", 1}, {"normal", 1}, one}, Attrs: hard(true), Tol: 1e-5})
			}
			cs = append(cs, Case{Name: "contrastive_xent_fused " + dualName + sz, Op: "contrastive_xent_fused", Ins: []ir.Type{a, a, f32(n, 8), f32(n, 8), scalarF},
				Fill: []Fill{{"normal", 0.3}, {"normal", 0.3}, {"normal", 1}, {"normal", 1}, one}, Attrs: dual, Tol: 1e-5})
		}
		return cs
	}
}
