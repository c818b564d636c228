package lowering

import (
	"reflect"

	"github.com/expc-dev/expc/ir"
)

// renamer redirects uses of values to other values. Graph passes walk a
// body in order and only ever map a value to one defined earlier, so
// applying it to each instruction as they go is enough.
//
// Outputs that update a parameter in place keep their value: that value's
// kernel writes the parameter's buffer, and redirecting the output to some
// other value (a parameter, or a value shared with another output) could
// leave nothing to write it.
type renamer map[*ir.Value]*ir.Value

func (r renamer) resolve(v *ir.Value) *ir.Value {
	for {
		w, ok := r[v]
		if !ok {
			return v
		}
		v = w
	}
}

// args rewrites an instruction's arguments; it reports whether any changed.
func (r renamer) args(in *ir.Instr) bool {
	changed := false
	for i, a := range in.Args {
		if w := r.resolve(a); w != a {
			in.Args[i] = w
			changed = true
		}
	}
	return changed
}

// outputs rewrites a function's outputs, except in-place updates.
func (r renamer) outputs(f *ir.Func) bool {
	changed := false
	for i, o := range f.Outputs {
		if o.Updates != nil {
			continue
		}
		if w := r.resolve(o.Value); w != o.Value {
			f.Outputs[i].Value = w
			changed = true
		}
	}
	return changed
}

// updateValues is the set of values that some output writes in place.
func updateValues(f *ir.Func) map[*ir.Value]bool {
	set := map[*ir.Value]bool{}
	for _, o := range f.Outputs {
		if o.Updates != nil {
			set[o.Value] = true
		}
	}
	return set
}

// attrDefaults are attribute values that mean the same as leaving the
// attribute out; canonical attributes leave them out.
var attrDefaults = map[string]ir.Attrs{
	"matmul":             {"transpose_a": false, "transpose_b": false},
	"matmul_bias_act":    {"transpose_a": false, "transpose_b": false},
	"matmul_act_grad":    {"transpose_a": false, "transpose_b": false},
	"softmax_xent":       {"label_smoothing": 0.0, "z_loss": 0.0},
	"softmax_xent_grad":  {"label_smoothing": 0.0, "z_loss": 0.0},
	"softmax_xent_fused": {"label_smoothing": 0.0, "z_loss": 0.0},
}

// normAttrs is the canonical form of an op's attributes: numbers in the
// Go type of their kind (float64, int, []int) and defaults left out. It
// returns nil for no attributes and never modifies a.
func normAttrs(op string, a ir.Attrs) ir.Attrs {
	if len(a) == 0 {
		return nil
	}
	kinds := map[string]ir.AttrKind{}
	if d, ok := ir.LookupOp(op); ok {
		for _, ad := range d.Attrs {
			kinds[ad.Name] = ad.Kind
		}
	}
	out := ir.Attrs{}
	for k, v := range a {
		v = normAttr(kinds[k], v)
		if def, ok := attrDefaults[op][k]; ok && reflect.DeepEqual(def, v) {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// normAttr converts a number to the Go type of its kind and leaves
// anything else (including values of the wrong kind, for the verifier to
// report) alone.
func normAttr(kind ir.AttrKind, v any) any {
	switch kind {
	case ir.AttrFloat:
		switch x := v.(type) {
		case float32:
			return float64(x)
		case int:
			return float64(x)
		case int64:
			return float64(x)
		}
	case ir.AttrInt:
		switch x := v.(type) {
		case int64:
			return int(x)
		case float64:
			if x == float64(int(x)) {
				return int(x)
			}
		}
	case ir.AttrInts:
		if xs, ok := v.([]any); ok {
			out := make([]int, len(xs))
			for i, x := range xs {
				f, ok := x.(float64)
				if !ok || f != float64(int(f)) {
					return v
				}
				out[i] = int(f)
			}
			return out
		}
	}
	return v
}

// sameAttrs compares two attribute maps exactly (Go types included); nil
// and empty are the same.
func sameAttrs(a, b ir.Attrs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !reflect.DeepEqual(v, w) {
			return false
		}
	}
	return true
}

// attrKey is a string equal for two attribute maps exactly when their
// canonical forms are equal.
func attrKey(op string, a ir.Attrs) string { return ir.FormatAttrs(normAttrs(op, a)) }

// isPure reports whether the op table marks op pure (unknown ops are not).
func isPure(op string) bool {
	d, ok := ir.LookupOp(op)
	return ok && d.Pure
}

// defOrder numbers a function's values in definition order: parameters
// first, then results in body order.
func defOrder(f *ir.Func) map[*ir.Value]int {
	pos := make(map[*ir.Value]int, len(f.Params)+len(f.Body))
	for _, p := range f.Params {
		pos[p] = len(pos)
	}
	for _, in := range f.Body {
		for _, r := range in.Results {
			pos[r] = len(pos)
		}
	}
	return pos
}

// align rounds n up to the arena alignment.
func align(n int64) int64 { return (n + arenaAlign - 1) &^ (arenaAlign - 1) }

// arenaAlign is the alignment of every buffer in the arena (a cache line,
// and enough for any SIMD load).
const arenaAlign = ir.BufferAlign
