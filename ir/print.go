package ir

import (
	"strconv"
	"strings"
)

// The text form of the graph IR. One instruction per line:
//
//	module fmnist-mlp
//
//	func @train(%x: tensor<f32,[128,784]> input, %w1: tensor<f32,[784,512]> param init="he_normal") {
//	  %h1 = matmul %x, %w1 {transpose_b = false}  loc("specs/fmnist/mlp.cue":3:22)  // tensor<f32,[128,512]>
//	  %w1.new, %v1.new = sgd %w1, %g, %v1, %lr {momentum = 0.9}  // tensor<f32,[784,512]>, tensor<f32,[784,512]>
//	  return %loss as "loss", %w1.new as "w1" updates %w1
//	}
//
// Result types are not part of the syntax: the parser infers them from the op
// table, and the printer shows them in a trailing comment. A signature or a
// return list longer than one line's worth is printed one item per line.
// Names that are not plain identifiers are quoted: %"w/1", @"my func".

// wrapAt is the length beyond which a signature or return list is split into
// one item per line.
const wrapAt = 100

// Print renders a module in the text form that Parse reads back.
func Print(m *Module) string {
	var sb strings.Builder
	sb.WriteString("module " + moduleName(m.Name) + "\n")
	for _, f := range m.Funcs {
		sb.WriteString("\n")
		sb.WriteString(PrintFunc(f))
	}
	return sb.String()
}

// PrintFunc renders one function, ending in "}\n".
func PrintFunc(f *Func) string {
	var sb strings.Builder
	params := make([]string, len(f.Params))
	for i, p := range f.Params {
		params[i] = printParam(p)
	}
	sb.WriteString("func @" + quoteName(f.Name, false) + "(")
	if sig := joinWrapped(params); strings.HasPrefix(sig, "\n") {
		sb.WriteString(sig + "\n)")
	} else {
		sb.WriteString(sig + ")")
	}
	sb.WriteString(" {\n")
	for _, in := range f.Body {
		sb.WriteString("  " + PrintInstr(in) + "\n")
	}
	outs := make([]string, len(f.Outputs))
	for i, o := range f.Outputs {
		outs[i] = printOutput(o)
	}
	sb.WriteString("  return")
	if ret := joinWrapped(outs); ret != "" && !strings.HasPrefix(ret, "\n") {
		sb.WriteString(" " + ret)
	} else {
		sb.WriteString(ret)
	}
	sb.WriteString("\n}\n")
	return sb.String()
}

// joinWrapped joins items with ", " when that fits on a line, else puts each
// item on its own line (the result then starts with a newline).
func joinWrapped(items []string) string {
	one := strings.Join(items, ", ")
	if len(one) <= wrapAt {
		return one
	}
	const indent = "    "
	return "\n" + indent + strings.Join(items, ",\n"+indent)
}

func printParam(p *Value) string {
	s := ValueRef(p) + ": " + p.Type.String()
	if p.Role != RoleNone {
		s += " " + p.Role.String()
	}
	if p.Init != "" {
		s += " init=" + strconv.Quote(p.Init)
	}
	return s
}

func printOutput(o Output) string {
	s := ValueRef(o.Value) + " as " + strconv.Quote(o.Name)
	if o.Updates != nil {
		s += " updates " + ValueRef(o.Updates)
	}
	return s
}

// PrintInstr renders one instruction without indentation or newline.
func PrintInstr(in *Instr) string {
	var sb strings.Builder
	for i, r := range in.Results {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(ValueRef(r))
	}
	if len(in.Results) > 0 {
		sb.WriteString(" = ")
	}
	sb.WriteString(in.Op)
	for i, a := range in.Args {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(" " + ValueRef(a))
	}
	if s := FormatAttrs(NormalizeAttrs(in.Op, in.Attrs)); s != "" {
		sb.WriteString(" " + s)
	}
	if !in.Loc.IsZero() {
		sb.WriteString("  loc(" + in.Loc.String() + ")")
	}
	if len(in.Results) > 0 {
		types := make([]string, len(in.Results))
		for i, r := range in.Results {
			types[i] = r.Type.String()
		}
		sb.WriteString("  // " + strings.Join(types, ", "))
	}
	return sb.String()
}

// ValueRef is how an instruction refers to a value: %name.
func ValueRef(v *Value) string {
	if v == nil {
		return "%<nil>"
	}
	return "%" + quoteName(v.Name, false)
}

// quoteName returns name bare when it is made of letters, digits, '_' and
// '.' (and '-' when dash is set), else as a quoted Go string.
func quoteName(name string, dash bool) string {
	if name == "" {
		return `""`
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) && !(dash && name[i] == '-' && i > 0) {
			return strconv.Quote(name)
		}
	}
	return name
}

func moduleName(name string) string {
	if name != "" && !isDigit(name[0]) && name[0] != '.' {
		return quoteName(name, true)
	}
	return strconv.Quote(name)
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// NormalizeAttrs returns attrs with each value in the Go type of its
// declared kind in op's table entry (int, float64, []int), so that attributes
// read back from JSON (where numbers are float64 and lists []any) print and
// compare like those the compiler built. Unknown ops and attributes, and
// values that do not convert, are left as they are.
func NormalizeAttrs(op string, a Attrs) Attrs {
	d, ok := LookupOp(op)
	if !ok || len(a) == 0 {
		return a
	}
	out := a.Clone()
	for _, ad := range d.Attrs {
		v, ok := a[ad.Name]
		if !ok || !attrHasKind(v, ad.Kind) {
			continue
		}
		switch ad.Kind {
		case AttrInt:
			out[ad.Name] = a.Int(ad.Name, 0)
		case AttrFloat:
			out[ad.Name] = a.Float(ad.Name, 0)
		case AttrInts:
			out[ad.Name] = a.Ints(ad.Name)
		}
	}
	return out
}
