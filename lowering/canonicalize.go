package lowering

import "github.com/expc-dev/expc/ir"

// canonicalize puts instructions in a canonical form so that CSE and
// fusion see through spelling differences, and folds identities that are
// exact in IEEE arithmetic (it never changes a result bit):
//
//	scale{factor=1}(x)  -> x
//	neg(neg(x))         -> x
//	add(x, neg(y))      -> sub(x, y)   (either argument of add)
//	sub(x, neg(y))      -> add(x, y)
//	commutative ops     -> arguments in definition order
//	attributes          -> numbers in their kind's Go type, defaults dropped
//
// Folded instructions are left for dce.
func canonicalize(u *Unit) (bool, error) {
	changed := false
	for _, f := range u.Module.Funcs {
		// One sweep reaches a fixed point for these rules; a second one
		// costs little and guards against a rule added later that does not.
		for range 4 {
			if !canonicalizeFunc(f) {
				break
			}
			changed = true
		}
	}
	return changed, nil
}

func canonicalizeFunc(f *ir.Func) bool {
	changed := false
	pos := defOrder(f)
	repl := renamer{}
	for _, in := range f.Body {
		if repl.args(in) {
			changed = true
		}
		if a := normAttrs(in.Op, in.Attrs); !sameAttrs(a, in.Attrs) {
			in.Attrs = a
			changed = true
		}
		if x := identity(in); x != nil {
			repl[in.Result()] = x
			continue
		}
		if foldNeg(in) {
			changed = true
		}
		if d, ok := ir.LookupOp(in.Op); ok && d.Commutative && len(in.Args) == 2 && pos[in.Args[1]] < pos[in.Args[0]] {
			in.Args[0], in.Args[1] = in.Args[1], in.Args[0]
			changed = true
		}
	}
	if repl.outputs(f) {
		changed = true
	}
	return changed
}

// identity returns the value an instruction is equal to, or nil.
func identity(in *ir.Instr) *ir.Value {
	switch in.Op {
	case "scale":
		if in.Attrs.Float("factor", 0) == 1 {
			return in.Args[0]
		}
	case "neg":
		if x := in.Args[0].Def; x != nil && x.Op == "neg" {
			return x.Args[0]
		}
	}
	return nil
}

// foldNeg rewrites add(x, neg y) and sub(x, neg y) in place.
func foldNeg(in *ir.Instr) bool {
	negArg := func(v *ir.Value) *ir.Value {
		if v.Def != nil && v.Def.Op == "neg" {
			return v.Def.Args[0]
		}
		return nil
	}
	switch in.Op {
	case "add":
		if y := negArg(in.Args[1]); y != nil {
			in.Op, in.Args = "sub", []*ir.Value{in.Args[0], y}
			return true
		}
		if y := negArg(in.Args[0]); y != nil {
			in.Op, in.Args = "sub", []*ir.Value{in.Args[1], y}
			return true
		}
	case "sub":
		if y := negArg(in.Args[1]); y != nil {
			in.Op, in.Args = "add", []*ir.Value{in.Args[0], y}
			return true
		}
	}
	return false
}
