package ir

import (
	"errors"
	"fmt"
)

// Verify checks every invariant of the graph IR and returns all problems
// joined (nil when there are none). Each problem names its function and,
// where there is one, its instruction.
//
// It checks: ops exist in the table; arity, attributes and the stored result
// types agree with InferTypes; SSA (each value defined once, params first,
// then body order, used only after its definition and only in its own
// function); Results[i].Def is the instruction; outputs read defined values;
// an output's Updates is a param or state parameter of the same function
// with the value's type, updated at most once; value, function and output
// names are unique; parameters have roles.
func Verify(m *Module) error {
	if m == nil {
		return errors.New("module is nil")
	}
	owner := map[*Value]*Func{} // which function defines a value
	for _, f := range m.Funcs {
		if f == nil {
			continue
		}
		for _, p := range f.Params {
			owner[p] = f
		}
		for _, in := range f.Body {
			if in == nil {
				continue
			}
			for _, r := range in.Results {
				owner[r] = f
			}
		}
	}
	var errs []error
	funcs := map[string]bool{}
	for i, f := range m.Funcs {
		if f == nil {
			errs = append(errs, fmt.Errorf("func %d is nil", i))
			continue
		}
		if funcs[f.Name] {
			errs = append(errs, fmt.Errorf("func @%s: defined twice", f.Name))
		}
		funcs[f.Name] = true
		v := &funcVerifier{f: f, owner: owner, defined: map[*Value]bool{}, names: map[string]bool{}}
		v.run()
		errs = append(errs, v.errs...)
	}
	return errors.Join(errs...)
}

type funcVerifier struct {
	f       *Func
	owner   map[*Value]*Func
	defined map[*Value]bool
	names   map[string]bool
	errs    []error
}

func (v *funcVerifier) errf(where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	v.errs = append(v.errs, fmt.Errorf("func @%s: %s", v.f.Name, msg))
}

// define records a value's definition: once per value, once per name.
func (v *funcVerifier) define(where string, val *Value) {
	if val.Name == "" {
		v.errf(where, "value has no name")
	}
	if v.defined[val] {
		v.errf(where, "%s is defined more than once", ValueRef(val))
	} else if v.names[val.Name] {
		v.errf(where, "name %s is used by two values", ValueRef(val))
	}
	if msg := typeProblem(val.Type); msg != "" {
		v.errf(where, "%s has an invalid type: %s", ValueRef(val), msg)
	}
	v.defined[val] = true
	v.names[val.Name] = true
}

// typeProblem says what is wrong with a type, or "".
func typeProblem(t Type) string {
	if t.DType != F32 && t.DType != I32 {
		return fmt.Sprintf("element type %d is neither f32 nor i32", t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Sprintf("negative dimension in %s", t)
		}
	}
	return ""
}

// use checks that a value read at where is already defined in this function.
func (v *funcVerifier) use(where string, val *Value) bool {
	switch {
	case val == nil:
		v.errf(where, "reads a nil value")
	case v.defined[val]:
		return true
	case v.owner[val] == v.f:
		v.errf(where, "%s is used before its definition", ValueRef(val))
	case v.owner[val] != nil:
		v.errf(where, "%s belongs to func @%s", ValueRef(val), v.owner[val].Name)
	default:
		v.errf(where, "%s is not defined in any function", ValueRef(val))
	}
	return false
}

func (v *funcVerifier) run() {
	for i, p := range v.f.Params {
		where := fmt.Sprintf("param %d", i)
		if p == nil {
			v.errf(where, "is nil")
			continue
		}
		where = "param " + ValueRef(p)
		v.define(where, p)
		if p.Def != nil {
			v.errf(where, "is a parameter but has a defining instruction (%s)", p.Def.Op)
		}
		if p.Role < RoleInput || p.Role > RoleState {
			v.errf(where, "has no role (want input, param or state)")
		}
	}
	for i, in := range v.f.Body {
		v.instr(i, in)
	}
	v.outputs()
}

func (v *funcVerifier) instr(i int, in *Instr) {
	if in == nil {
		v.errf(fmt.Sprintf("instruction %d", i), "is nil")
		return
	}
	where := fmt.Sprintf("instruction %d (%s)", i, instrHead(in))
	ok := true
	types := make([]Type, len(in.Args))
	for j, a := range in.Args {
		if !v.use(where, a) {
			ok = false
			continue
		}
		types[j] = a.Type
	}
	if _, known := LookupOp(in.Op); !known {
		v.errf(where, "unknown op %q", in.Op)
		ok = false
	}
	if ok {
		want, err := InferTypes(in.Op, types, in.Attrs)
		switch {
		case err != nil:
			v.errf(where, "%v", err)
		case len(want) != len(in.Results):
			v.errf(where, "has %d results, %s gives %d", len(in.Results), in.Op, len(want))
		default:
			for j, r := range in.Results {
				if r != nil && !r.Type.Equal(want[j]) {
					v.errf(where, "result %s has type %s, %s gives %s", ValueRef(r), r.Type, in.Op, want[j])
				}
			}
		}
	}
	for j, r := range in.Results {
		if r == nil {
			v.errf(where, "result %d is nil", j)
			continue
		}
		if r.Def != in {
			v.errf(where, "result %s does not point back to its instruction (Def)", ValueRef(r))
		}
		if r.Role != RoleNone {
			v.errf(where, "result %s has role %s; only parameters have roles", ValueRef(r), r.Role)
		}
		v.define(where, r)
	}
}

func (v *funcVerifier) outputs() {
	names := map[string]bool{}
	updated := map[*Value]string{}
	for i, o := range v.f.Outputs {
		where := fmt.Sprintf("output %d (%q)", i, o.Name)
		if o.Name == "" {
			v.errf(where, "has no name")
		} else if names[o.Name] {
			v.errf(where, "name used by two outputs")
		}
		names[o.Name] = true
		okValue := v.use(where, o.Value)
		if o.Updates == nil {
			continue
		}
		u := o.Updates
		switch {
		case v.owner[u] != v.f || u.Def != nil:
			v.errf(where, "updates %s, which is not a parameter of this function", ValueRef(u))
		case u.Role != RoleParam && u.Role != RoleState:
			v.errf(where, "updates %s, whose role is %q (want param or state)", ValueRef(u), u.Role)
		case okValue && !u.Type.Equal(o.Value.Type):
			v.errf(where, "updates %s of type %s with %s of type %s", ValueRef(u), u.Type, ValueRef(o.Value), o.Value.Type)
		}
		if prev, dup := updated[u]; dup {
			v.errf(where, "updates %s, which output %q already updates", ValueRef(u), prev)
		}
		updated[u] = o.Name
	}
}

// instrHead is "%a, %b = op" for error messages.
func instrHead(in *Instr) string {
	s := ""
	for i, r := range in.Results {
		if i > 0 {
			s += ", "
		}
		s += ValueRef(r)
	}
	if s != "" {
		s += " = "
	}
	return s + in.Op
}
