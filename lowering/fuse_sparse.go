package lowering

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// fuseSparseMasks turns each multiply by a mask that feeds a matmul into a
// masked matmul that never touches pruned weights (masks are listed in
// plan.Schedule.Masks by the compiler):
//
//	wm = mul(w, m); matmul(a, wm)                  → masked_matmul(a, w, m, gen)
//	wm = mul(w, m); matmul_bias_act(a, wm, bias)   → masked_matmul(a, w, m, gen, bias){act}
//	matmul(dy, wm){transpose_b}                    → masked_matmul(dy, w, m, gen){transpose_b}
//	matmul_act_grad(dy, wm, pre){transpose_b}      → masked_matmul(dy, w, m, gen, pre){transpose_b, act}
//	mul(matmul(x, dy){transpose_a}, m)             → masked_matmul_dw(x, dy, m, gen)
//
// The kernel of each (nm, block, csr or dense-with-mask) is chosen by the
// cost model in sparse_choose.go; its attributes carry the mask's pattern
// and density so that `expc explain` can show the estimates. The fused
// instruction keeps the replaced one's result value; the mul(w, m) left
// without readers goes to dce-late.
func fuseSparseMasks(u *Unit) (bool, error) {
	masks := u.Plan.Schedule.Masks
	if masks == nil || len(masks.Layers) == 0 {
		return false, nil
	}
	if u.FusedFrom == nil {
		u.FusedFrom = map[*ir.Instr][]string{}
	}
	var notes []string
	changed := false
	for _, f := range u.Module.Funcs {
		params := map[string]*ir.Value{}
		for _, p := range f.Params {
			params[p.Name] = p
		}
		users := map[*ir.Value][]*ir.Instr{}
		for _, in := range f.Body {
			for _, a := range in.Args {
				users[a] = append(users[a], in)
			}
		}
		uses := f.Uses()
		replace := map[*ir.Instr]*ir.Instr{}
		drop := map[*ir.Instr]bool{}
		for _, l := range masks.Layers {
			w, m, gen := params[l.Weight], params[l.Mask], params[l.Gen]
			if w == nil || m == nil || gen == nil {
				continue
			}
			attrs := maskAttrs(u, l)
			var chosen []string
			for _, mul := range users[m] {
				if mul.Op != "mul" || replace[mul] != nil {
					continue
				}
				other := mul.Args[0]
				if other == m {
					other = mul.Args[1]
				}
				switch {
				case other == w: // W ⊙ M: fuse into every matmul that reads it
					for _, mm := range users[mul.Result()] {
						fused, p := maskedGEMM(mm, mul.Result(), w, m, gen)
						if fused == nil || replace[mm] != nil {
							continue
						}
						batch := fused.Args[0].Type.Shape[0]
						fused.Attrs = chooseKernel(p, batch, w.Type, attrs, fused.Attrs)
						if err := checkFused(fused, mm.Results); err != nil {
							return false, fmt.Errorf("func %s: %w", f.Name, err)
						}
						from := []string{"mul"}
						if prior, ok := u.FusedFrom[mm]; ok {
							from = append(from, prior...)
						} else {
							from = append(from, mm.Op)
						}
						u.FusedFrom[fused] = from
						replace[mm] = fused
						chosen = append(chosen, string(p)+"="+fused.Attrs.Str("kernel", ""))
					}
				case other.Def != nil && other.Def.Op == "matmul" && uses[other] == 1 &&
					other.Def.Attrs.Bool("transpose_a", false) && !other.Def.Attrs.Bool("transpose_b", false) &&
					other.Def.Args[0].Type.Rank() == 2 && other.Type.Equal(m.Type):
					mm := other.Def
					fused := &ir.Instr{Op: "masked_matmul_dw", Args: []*ir.Value{mm.Args[0], mm.Args[1], m, gen},
						Results: mul.Results, Loc: mm.Loc}
					fused.Attrs = chooseKernel(WeightG, mm.Args[0].Type.Shape[0], w.Type, attrs, nil)
					if err := checkFused(fused, mul.Results); err != nil {
						return false, fmt.Errorf("func %s: %w", f.Name, err)
					}
					u.FusedFrom[fused] = []string{"matmul", "mul"}
					replace[mul], drop[mm] = fused, true
					chosen = append(chosen, string(WeightG)+"="+fused.Attrs.Str("kernel", ""))
				}
			}
			if len(chosen) > 0 && f.Name == "train" {
				slices.Sort(chosen)
				notes = append(notes, l.Layer+" "+strings.Join(chosen, " "))
			}
		}
		if len(replace) == 0 {
			continue
		}
		changed = true
		body := f.Body[:0]
		for _, in := range f.Body {
			switch {
			case drop[in]:
			case replace[in] != nil:
				fused := replace[in]
				for _, r := range fused.Results {
					r.Def = fused
				}
				body = append(body, fused)
			default:
				body = append(body, in)
			}
		}
		f.Body = body
	}
	u.note = strings.Join(notes, "; ")
	return changed, nil
}

// maskedGEMM builds the masked matmul that replaces mm, a GEMM reading the
// masked weight wm, and says which product it is; nil when mm reads wm in
// a form no kernel takes (wm as the left operand, transposed a).
func maskedGEMM(mm *ir.Instr, wm, w, m, gen *ir.Value) (*ir.Instr, Product) {
	switch mm.Op {
	case "matmul", "matmul_bias_act", "matmul_act_grad":
	default:
		return nil, ""
	}
	if len(mm.Args) < 2 || mm.Args[1] != wm || mm.Args[0] == wm || mm.Attrs.Bool("transpose_a", false) {
		return nil, ""
	}
	tb := mm.Attrs.Bool("transpose_b", false)
	p := Forward
	if tb {
		p = InputGr
	}
	if mm.Op == "matmul_act_grad" && !tb || mm.Op == "matmul_bias_act" && tb {
		return nil, ""
	}
	args := []*ir.Value{mm.Args[0], w, m, gen}
	attrs := ir.Attrs{}
	if tb {
		attrs["transpose_b"] = true
	}
	if mm.Op != "matmul" {
		attrs["act"] = mm.Attrs.Str("act", "none")
		if len(mm.Args) == 3 {
			args = append(args, mm.Args[2])
		}
	}
	return &ir.Instr{Op: "masked_matmul", Args: args, Attrs: attrs, Results: mm.Results, Loc: mm.Loc}, p
}

// maskAttrs are the pattern attributes of a masked layer, read off its
// mask_update in the mask program (the density is the layer's final one).
func maskAttrs(u *Unit, l ir.MaskLayer) ir.Attrs {
	a := ir.Attrs{"pattern": "unstructured", "density": l.Density}
	if f := u.Module.Func(u.Plan.Schedule.Masks.Program); f != nil {
		for _, in := range f.Body {
			if in.Op == "mask_update" && in.Args[1].Name == l.Mask {
				a["pattern"] = in.Attrs.Str("pattern", "unstructured")
				for _, k := range []string{"n", "m", "block"} {
					if v, ok := in.Attrs[k]; ok {
						a[k] = v
					}
				}
			}
		}
	}
	if a.Str("pattern", "") == "nm" {
		a["density"] = float64(a.Int("n", 1)) / float64(a.Int("m", 1))
	}
	return a
}

// chooseKernel adds the cheapest kernel (and its fallback density) to the
// fused instruction's attributes.
func chooseKernel(p Product, batch int, w ir.Type, mask, attrs ir.Attrs) ir.Attrs {
	out := mask.Clone()
	for k, v := range attrs {
		out[k] = v
	}
	best := MaskedCosts(p, batch, w, mask)[0].Kernel
	out["kernel"] = best
	if d := denseAbove(p, batch, w, mask, best); d > 0 {
		out["dense_above"] = d
	}
	return out
}

// checkFused checks a fused instruction against the op table and the
// values it takes over.
func checkFused(in *ir.Instr, results []*ir.Value) error {
	types := make([]ir.Type, len(in.Args))
	for i, a := range in.Args {
		types[i] = a.Type
	}
	rts, err := ir.InferTypes(in.Op, types, in.Attrs)
	if err != nil {
		return fmt.Errorf("fusing %s: %w", in.Op, err)
	}
	for i, t := range rts {
		if !t.Equal(results[i].Type) {
			return fmt.Errorf("fusing %s: result %s, the unfused value %%%s is %s", in.Op, t, results[i].Name, results[i].Type)
		}
	}
	return nil
}

// hasMasks: fuse-sparse-masks applies to plans with a mask schedule.
func hasMasks(u *Unit) bool {
	return u.Plan != nil && u.Plan.Schedule.Masks != nil && len(u.Plan.Schedule.Masks.Layers) > 0
}
