package ir

import (
	"fmt"
	"sort"
)

// AttrKind is the type an attribute must have.
type AttrKind uint8

const (
	AttrBool AttrKind = iota + 1
	AttrInt
	AttrFloat
	AttrString
	AttrInts
)

// AttrDef declares one attribute of an op.
type AttrDef struct {
	Name     string
	Kind     AttrKind
	Required bool
	OneOf    []string // allowed values of a string attribute
}

// OpDef is one row of the op table.
type OpDef struct {
	Name    string
	MinArgs int
	MaxArgs int // -1: variadic
	Results int // number of results; -1: as many as the type rule gives
	Attrs   []AttrDef
	// Infer computes the result types from the argument types and attributes,
	// or says why they are invalid.
	Infer func(args []Type, attrs Attrs) ([]Type, error)
	// Pure ops have no effect beyond their results (CSE and DCE may touch them).
	Pure bool
	// Commutative ops may have their two arguments swapped by canonicalize.
	Commutative bool
	// Elementwise ops map equal-shaped inputs to an output of the same shape.
	Elementwise bool
	// Fused marks ops that only passes create (they have no gradient rule).
	Fused bool
	// Doc is one line for `expc explain` and the op reference.
	Doc string
}

var opTable = map[string]*OpDef{}

// Register adds an op to the table; it panics on a duplicate, which is a
// programming error caught by any test.
func Register(d *OpDef) {
	if _, dup := opTable[d.Name]; dup {
		panic("ir: op registered twice: " + d.Name)
	}
	opTable[d.Name] = d
}

// LookupOp finds an op by name.
func LookupOp(name string) (*OpDef, bool) {
	d, ok := opTable[name]
	return d, ok
}

// Ops lists every registered op, sorted by name.
func Ops() []*OpDef {
	out := make([]*OpDef, 0, len(opTable))
	for _, d := range opTable {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// InferTypes checks arity and attributes against the table and runs the type rule.
func InferTypes(op string, args []Type, attrs Attrs) ([]Type, error) {
	d, ok := LookupOp(op)
	if !ok {
		return nil, fmt.Errorf("unknown op %q", op)
	}
	if len(args) < d.MinArgs || (d.MaxArgs >= 0 && len(args) > d.MaxArgs) {
		return nil, fmt.Errorf("%s takes %s arguments, got %d", op, arityString(d), len(args))
	}
	if err := checkAttrs(d, attrs); err != nil {
		return nil, err
	}
	ts, err := d.Infer(args, attrs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.Results >= 0 && len(ts) != d.Results {
		return nil, fmt.Errorf("%s: type rule gave %d results, table says %d", op, len(ts), d.Results)
	}
	return ts, nil
}

func arityString(d *OpDef) string {
	switch {
	case d.MaxArgs < 0:
		return fmt.Sprintf("at least %d", d.MinArgs)
	case d.MinArgs == d.MaxArgs:
		return fmt.Sprint(d.MinArgs)
	}
	return fmt.Sprintf("%d to %d", d.MinArgs, d.MaxArgs)
}

func checkAttrs(d *OpDef, attrs Attrs) error {
	known := map[string]bool{}
	for _, ad := range d.Attrs {
		known[ad.Name] = true
		v, ok := attrs[ad.Name]
		if !ok {
			if ad.Required {
				return fmt.Errorf("%s: missing attribute %q", d.Name, ad.Name)
			}
			continue
		}
		if !attrHasKind(v, ad.Kind) {
			return fmt.Errorf("%s: attribute %q has the wrong type (%T)", d.Name, ad.Name, v)
		}
		if len(ad.OneOf) > 0 {
			s, _ := v.(string)
			if !contains(ad.OneOf, s) {
				return fmt.Errorf("%s: attribute %q is %q, want one of %v", d.Name, ad.Name, s, ad.OneOf)
			}
		}
	}
	for k := range attrs {
		if !known[k] {
			return fmt.Errorf("%s: unknown attribute %q", d.Name, k)
		}
	}
	return nil
}

func attrHasKind(v any, k AttrKind) bool {
	switch k {
	case AttrBool:
		_, ok := v.(bool)
		return ok
	case AttrInt:
		switch x := v.(type) {
		case int, int64:
			return true
		case float64:
			return x == float64(int64(x))
		}
	case AttrFloat:
		switch v.(type) {
		case float64, float32, int, int64:
			return true
		}
	case AttrString:
		_, ok := v.(string)
		return ok
	case AttrInts:
		switch v.(type) {
		case []int, []any:
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
