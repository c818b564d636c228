package lowering

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// fuseElementwise fuses GEMM epilogues and the softmax cross-entropy pair:
//
//	matmul → bias_add → act          → matmul_bias_act{act}(a, b, bias)
//	matmul → bias_add                → matmul_bias_act{act="none"}(a, b, bias)
//	matmul → act                     → matmul_bias_act{act}(a, b)
//	matmul → act_grad(dy=·, x)       → matmul_act_grad{act}(a, b, x)
//	softmax_xent(l, y), softmax_xent_grad(l, y, d)
//	                                 → softmax_xent_fused(l, y, d) with both results
//
// A GEMM chain only grows through intermediates read exactly once (a
// function output counts as a read), so no intermediate is lost. The fused
// instruction takes the last instruction's place and keeps its result
// values; Unit.FusedFrom records the ops it replaces.
func fuseElementwise(u *Unit) (bool, error) {
	if u.FusedFrom == nil {
		u.FusedFrom = map[*ir.Instr][]string{}
	}
	counts := map[string]int{}
	for _, f := range u.Module.Funcs {
		fz := &fuser{u: u, f: f, uses: f.Uses(), users: map[*ir.Value][]*ir.Instr{},
			pos: map[*ir.Instr]int{}, at: map[*ir.Instr]*ir.Instr{}, drop: map[*ir.Instr]bool{}}
		for i, in := range f.Body {
			fz.pos[in] = i
			for _, a := range in.Args {
				fz.users[a] = append(fz.users[a], in)
			}
		}
		for _, in := range f.Body {
			var fused *ir.Instr
			var err error
			switch in.Op {
			case "matmul":
				fused, err = fz.gemm(in)
			case "softmax_xent_grad":
				fused, err = fz.xent(in)
			}
			if err != nil {
				return false, fmt.Errorf("func %s: %w", f.Name, err)
			}
			if fused != nil {
				counts[fused.Op]++
			}
		}
		fz.rebuild()
	}
	u.note = fusionNote(counts)
	return len(counts) > 0, nil
}

type fuser struct {
	u     *Unit
	f     *ir.Func
	uses  map[*ir.Value]int
	users map[*ir.Value][]*ir.Instr
	pos   map[*ir.Instr]int
	at    map[*ir.Instr]*ir.Instr // instruction → the fused instruction that takes its place
	drop  map[*ir.Instr]bool      // instructions folded into a fused one elsewhere
}

// soleUser returns the one instruction that reads v, when v is read once
// and by an instruction (not an output).
func (fz *fuser) soleUser(v *ir.Value) *ir.Instr {
	if fz.uses[v] != 1 || len(fz.users[v]) != 1 {
		return nil
	}
	return fz.users[v][0]
}

func isActivation(op string) bool { return slices.Contains(ir.Activations, op) }

func (fz *fuser) gemm(mm *ir.Instr) (*ir.Instr, error) {
	chain := []*ir.Instr{mm}
	args := slices.Clone(mm.Args)
	op, act := "matmul_bias_act", ""
	next := fz.soleUser(mm.Result())
	switch {
	case next == nil:
		return nil, nil
	case next.Op == "bias_add" && next.Args[0] == mm.Result():
		chain = append(chain, next)
		args = append(args, next.Args[1])
		act = "none"
		if a := fz.soleUser(next.Result()); a != nil && isActivation(a.Op) {
			chain = append(chain, a)
			act = a.Op
		}
	case isActivation(next.Op):
		chain = append(chain, next)
		act = next.Op
	case strings.HasSuffix(next.Op, "_grad") && isActivation(strings.TrimSuffix(next.Op, "_grad")) &&
		next.Args[0] == mm.Result() && next.Args[1] != mm.Result():
		chain = append(chain, next)
		args = append(args, next.Args[1])
		op, act = "matmul_act_grad", strings.TrimSuffix(next.Op, "_grad")
	default:
		return nil, nil
	}
	attrs := normAttrs("matmul", mm.Attrs)
	if attrs == nil {
		attrs = ir.Attrs{}
	}
	attrs["act"] = act
	last := chain[len(chain)-1]
	return fz.replace(chain, last, op, args, attrs, last.Results, mm.Loc)
}

// xent pairs a softmax_xent_grad with a softmax_xent of the same logits,
// labels and attributes. The fused instruction goes where the later of the
// two was, which is valid when nothing between them reads the earlier one's
// result.
func (fz *fuser) xent(g *ir.Instr) (*ir.Instr, error) {
	if fz.drop[g] || fz.at[g] != nil {
		return nil, nil
	}
	for _, x := range fz.users[g.Args[0]] {
		if x.Op != "softmax_xent" || x.Args[1] != g.Args[1] || fz.drop[x] || fz.at[x] != nil ||
			!sameAttrs(normAttrs(x.Op, x.Attrs), normAttrs(g.Op, g.Attrs)) {
			continue
		}
		early, late := x, g
		if fz.pos[g] < fz.pos[x] {
			early, late = g, x
		}
		if fz.readBetween(early, late) {
			continue
		}
		args := []*ir.Value{g.Args[0], g.Args[1], g.Args[2]}
		results := []*ir.Value{x.Result(), g.Result()}
		return fz.replace([]*ir.Instr{x, g}, late, "softmax_xent_fused", args, normAttrs(x.Op, x.Attrs), results, x.Loc)
	}
	return nil, nil
}

// readBetween reports whether an instruction after early, up to and
// including late, reads a result of early.
func (fz *fuser) readBetween(early, late *ir.Instr) bool {
	for _, r := range early.Results {
		for _, user := range fz.users[r] {
			if p := fz.pos[user]; p > fz.pos[early] && p <= fz.pos[late] {
				return true
			}
		}
	}
	return false
}

// replace builds the fused instruction, checks its types against the op
// table, puts it in place of at and drops the rest of chain.
func (fz *fuser) replace(chain []*ir.Instr, at *ir.Instr, op string, args []*ir.Value, attrs ir.Attrs,
	results []*ir.Value, loc ir.Loc) (*ir.Instr, error) {
	types := make([]ir.Type, len(args))
	for i, a := range args {
		types[i] = a.Type
	}
	rts, err := ir.InferTypes(op, types, attrs)
	if err != nil {
		return nil, fmt.Errorf("fusing %s: %w", op, err)
	}
	for i, t := range rts {
		if !t.Equal(results[i].Type) {
			return nil, fmt.Errorf("fusing %s: result %d is %s, the unfused value %%%s is %s", op, i, t, results[i].Name, results[i].Type)
		}
	}
	fused := &ir.Instr{Op: op, Args: args, Attrs: attrs, Results: results, Loc: loc}
	var from []string
	for _, in := range chain {
		if prior, ok := fz.u.FusedFrom[in]; ok {
			from = append(from, prior...)
		} else {
			from = append(from, in.Op)
		}
		delete(fz.u.FusedFrom, in)
		if in != at {
			fz.drop[in] = true
		}
	}
	for _, r := range results {
		r.Def = fused
	}
	fz.u.FusedFrom[fused] = from
	fz.at[at] = fused
	return fused, nil
}

func (fz *fuser) rebuild() {
	body := make([]*ir.Instr, 0, len(fz.f.Body))
	for _, in := range fz.f.Body {
		switch {
		case fz.drop[in]:
		case fz.at[in] != nil:
			body = append(body, fz.at[in])
		default:
			body = append(body, in)
		}
	}
	fz.f.Body = body
}

func fusionNote(counts map[string]int) string {
	var parts []string
	for _, op := range []string{"matmul_bias_act", "matmul_act_grad", "softmax_xent_fused"} {
		if counts[op] > 0 {
			parts = append(parts, strconv.Itoa(counts[op])+" "+op)
		}
	}
	return strings.Join(parts, ", ")
}
