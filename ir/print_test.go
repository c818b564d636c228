package ir

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// testModule builds a module that uses every op in the table, multi-result
// ops, attributes of every kind, locations with awkward file names, quoted
// value names and a signature long enough to wrap.
func testModule(t *testing.T) *Module {
	t.Helper()
	train := &Func{Name: "train"}
	b := NewBuilder(train)
	x := b.Param("x", Tensor(F32, 4, 6), RoleInput)
	y := b.Param("y", Tensor(I32, 4), RoleInput)
	step := b.Param("step", Scalar(I32), RoleInput)
	w := b.Param("w", Tensor(F32, 6, 3), RoleParam)
	w.Init = "he_normal"
	bias := b.Param("fc/b", Tensor(F32, 3), RoleParam) // needs quoting
	bias.Init = "zeros"
	v := b.Param("v", Tensor(F32, 6, 3), RoleState)
	m := b.Param("m", Tensor(F32, 6, 3), RoleState)

	b.Loc = Loc{File: `specs/my "quoted" dir/mlp.cue`, Line: 3, Col: 22}
	h := b.V("matmul", Attrs{"transpose_a": false, "transpose_b": false}, "h", x, w)
	b.Loc = Loc{File: `C:\specs\a b.cue`, Line: 14, Col: 1}
	hb := b.V("bias_add", nil, "h", h, bias) // becomes h.1
	b.Loc = Loc{}
	ew := []*Value{}
	for _, op := range []string{"neg", "exp", "log", "sqrt", "square"} {
		ew = append(ew, b.V(op, nil, "", hb))
	}
	for _, op := range Activations {
		a := b.V(op, nil, "", hb)
		ew = append(ew, b.V(op+"_grad", nil, "", a, hb))
	}
	ew = append(ew, b.V("scale", Attrs{"factor": -1e-08}, "", hb), b.V("scale", Attrs{"factor": 2.5e300}, "", hb))
	for _, op := range []string{"add", "sub", "mul", "div"} {
		ew = append(ew, b.V(op, nil, "", ew[0], ew[len(ew)-1]))
	}
	b.V("reduce_sum", Attrs{"axis": 1}, "rows", ew[len(ew)-1])
	b.V("fill", Attrs{"shape": []int{4, 3}, "value": 0.5}, "c", nil...)
	one := b.V("fill", Attrs{"shape": []int{}, "value": 1.0}, "one")
	lr := b.V("lr_schedule", Attrs{"kind": "cosine", "lr": 0.1, "min_lr": 1e-05, "warmup": 10, "total": 1000}, "lr", step)
	loss := b.V("softmax_xent", Attrs{"label_smoothing": 0.1, "z_loss": 0.0001}, "loss", hb, y)
	g := b.V("softmax_xent_grad", Attrs{"label_smoothing": 0.1}, "dlogits", hb, y, one)
	correct := b.V("count_correct", nil, "correct", hb, y)
	gw := b.V("matmul", Attrs{"transpose_a": true}, "gw", x, g)
	sgd := b.Must("sgd", []*Value{w, gw, v, lr}, Attrs{"momentum": 0.9, "nesterov": true, "weight_decay": 0.0005}, "w.new", "v.new")
	b.Must("adamw", []*Value{w, gw, m, v, lr, step}, Attrs{"beta1": 0.9, "beta2": 0.999, "eps": 1e-08, "weight_decay": 0.01}, "w.adam", "m.new", "v.adam")
	b.V("matmul_bias_act", Attrs{"act": "relu"}, "fused", x, w, bias)
	b.V("matmul_bias_act", Attrs{"act": "none", "transpose_b": false}, "fused", x, w)
	b.V("matmul_act_grad", Attrs{"act": "tanh", "transpose_b": true}, "dx", g, w, x)
	fx := b.Must("softmax_xent_fused", []*Value{hb, y, one}, nil, "loss2", "dlogits2")
	contrastiveOps(b, x, y, one)
	moeOps(b, x, y, step)
	sparseOps(b, x, w, bias, step)
	train.Outputs = []Output{
		{Name: "loss", Value: loss},
		{Name: "loss fused", Value: fx.Results[0]},
		{Name: "w", Value: sgd.Results[0], Updates: w},
		{Name: "v", Value: sgd.Results[1], Updates: v},
		{Name: "correct", Value: correct},
	}

	eval := &Func{Name: "eval step"}
	e := NewBuilder(eval)
	ex := e.Param("x", Tensor(F32, 4, 6), RoleInput)
	ew1 := e.Param("w", Tensor(F32, 6, 3), RoleParam)
	eval.Outputs = []Output{{Name: "logits", Value: e.V("matmul", nil, "h", ex, ew1)}}

	return &Module{Name: "fmnist-mlp", Funcs: []*Func{train, eval}}
}

func TestRoundTrip(t *testing.T) {
	m := testModule(t)
	if err := Verify(m); err != nil {
		t.Fatalf("test module does not verify:\n%v", err)
	}
	used := map[string]bool{}
	for _, f := range m.Funcs {
		for _, in := range f.Body {
			used[in.Op] = true
		}
	}
	for _, d := range Ops() {
		if !used[d.Name] {
			t.Errorf("op %s is not in the round-trip module; add it to testModule", d.Name)
		}
	}
	text := Print(m)
	m2, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse(Print(m)): %v\n%s", err, numbered(text))
	}
	if text2 := Print(m2); text2 != text {
		t.Fatalf("Print(Parse(Print(m))) differs:\n--- first\n%s\n--- second\n%s", text, text2)
	}
	if err := Verify(m2); err != nil {
		t.Fatalf("parsed module does not verify: %v", err)
	}
	if diff := diffModules(m, m2); diff != "" {
		t.Fatalf("parsed module differs: %s\n%s", diff, text)
	}
	for _, want := range []string{
		`%h = matmul %x, %w {transpose_a = false, transpose_b = false}  loc("specs/my \"quoted\" dir/mlp.cue":3:22)  // tensor<f32,[4,3]>`,
		`%"fc/b": tensor<f32,[3]> param init="zeros"`,
		`{factor = -1e-08}`,
		`%w.new, %v.new = sgd %w, %gw, %v, %lr {momentum = 0.9, nesterov = true, weight_decay = 0.0005}`,
		`{shape = [], value = 1.0}`,
		"func @\"eval step\"(%x: tensor<f32,[4,6]> input, %w: tensor<f32,[6,3]> param) {\n",
		"  return\n    %loss as \"loss\",\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("printed module lacks %q:\n%s", want, text)
		}
	}
}

func TestPrintSmall(t *testing.T) {
	f := &Func{Name: "f"}
	b := NewBuilder(f)
	x := b.Param("x", Tensor(F32, 2), RoleInput)
	b.Loc = Loc{File: "a.cue", Line: 1, Col: 2}
	f.Outputs = []Output{{Name: "y", Value: b.V("relu", nil, "y", x)}}
	want := `module m

func @f(%x: tensor<f32,[2]> input) {
  %y = relu %x  loc("a.cue":1:2)  // tensor<f32,[2]>
  return %y as "y"
}
`
	got := Print(&Module{Name: "m", Funcs: []*Func{f}})
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Comments, blank lines and a missing return parse too.
	m, err := Parse("// header\nmodule \"2 mods\"\n\nfunc @g() {\n  // nothing\n}\n")
	if err != nil || m.Name != "2 mods" || len(m.Funcs) != 1 || len(m.Funcs[0].Outputs) != 0 {
		t.Fatalf("Parse: %v, %+v", err, m)
	}
	if got := Print(m); !strings.HasPrefix(got, "module \"2 mods\"\n") {
		t.Fatalf("module name not quoted: %q", got)
	}
}

func TestAttrValues(t *testing.T) {
	for _, v := range []any{true, false, 0, -3, 1 << 40, 0.0, -0.5, 1e-08, -1.5e+300, 3.0, 1e21,
		math.Inf(1), math.Inf(-1), "", `a "b" \ c`, "ü", []int{}, []int{-1, 2, 300}} {
		src := "{k = " + FormatAttr(v) + "}"
		p := &parser{lx: lexer{src: src, line: 1, col: 1}}
		var got any
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = r.(bail).err
				}
			}()
			p.advance()
			got = p.attrs()["k"]
			return nil
		}()
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("%s: got %#v (%v), want %#v", src, got, err, v)
		}
	}
}

// diffModules compares two modules structurally; values are matched by name.
func diffModules(a, b *Module) string {
	if a.Name != b.Name || len(a.Funcs) != len(b.Funcs) {
		return fmt.Sprintf("module %q with %d funcs vs %q with %d", a.Name, len(a.Funcs), b.Name, len(b.Funcs))
	}
	for i, fa := range a.Funcs {
		fb := b.Funcs[i]
		if d := diffFuncs(fa, fb); d != "" {
			return "func @" + fa.Name + ": " + d
		}
	}
	return ""
}

func diffFuncs(fa, fb *Func) string {
	if fa.Name != fb.Name || len(fa.Params) != len(fb.Params) || len(fa.Body) != len(fb.Body) || len(fa.Outputs) != len(fb.Outputs) {
		return "different name or counts"
	}
	sameValue := func(x, y *Value) bool {
		return x.Name == y.Name && x.Type.Equal(y.Type) && x.Role == y.Role && x.Init == y.Init
	}
	for i := range fa.Params {
		if !sameValue(fa.Params[i], fb.Params[i]) || fb.Params[i].Def != nil {
			return fmt.Sprintf("param %d: %+v vs %+v", i, *fa.Params[i], *fb.Params[i])
		}
	}
	for i, ia := range fa.Body {
		ib := fb.Body[i]
		if ia.Op != ib.Op || ia.Loc != ib.Loc || len(ia.Args) != len(ib.Args) || len(ia.Results) != len(ib.Results) {
			return fmt.Sprintf("instruction %d: %s vs %s", i, PrintInstr(ia), PrintInstr(ib))
		}
		if len(ia.Attrs) != len(ib.Attrs) || (len(ia.Attrs) > 0 && !reflect.DeepEqual(ia.Attrs, ib.Attrs)) {
			return fmt.Sprintf("instruction %d: attrs %#v vs %#v", i, ia.Attrs, ib.Attrs)
		}
		for j := range ia.Args {
			if !sameValue(ia.Args[j], ib.Args[j]) {
				return fmt.Sprintf("instruction %d: arg %d differs", i, j)
			}
		}
		for j := range ia.Results {
			if !sameValue(ia.Results[j], ib.Results[j]) || ib.Results[j].Def != ib {
				return fmt.Sprintf("instruction %d: result %d differs", i, j)
			}
		}
	}
	for i, oa := range fa.Outputs {
		ob := fb.Outputs[i]
		if oa.Name != ob.Name || !sameValue(oa.Value, ob.Value) || (oa.Updates == nil) != (ob.Updates == nil) ||
			(oa.Updates != nil && !sameValue(oa.Updates, ob.Updates)) {
			return fmt.Sprintf("output %d differs", i)
		}
	}
	return ""
}

func numbered(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = fmt.Sprintf("%3d %s", i+1, lines[i])
	}
	return strings.Join(lines, "\n")
}

// Attributes print in their declared kind whatever Go type holds them, so
// the text is canonical; the parser reads them back in that kind.
func TestPrintNormalizesAttrs(t *testing.T) {
	f := &Func{Name: "f"}
	b := NewBuilder(f)
	x := b.Param("x", Tensor(F32, 2, 3), RoleInput)
	b.V("scale", Attrs{"factor": 2}, "s", x)
	b.V("reduce_sum", Attrs{"axis": float64(1)}, "r", x)
	b.V("fill", Attrs{"shape": []any{float64(2)}, "value": int64(1)}, "c")
	text := Print(&Module{Name: "m", Funcs: []*Func{f}})
	for _, want := range []string{"{factor = 2.0}", "{axis = 1}", "{shape = [2], value = 1.0}"} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	m, err := Parse(strings.Replace(text, "2.0", "2", 1))
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Funcs[0].Body[0].Attrs["factor"]; v != 2.0 {
		t.Errorf("factor parsed as %#v, want float64 2", v)
	}
}
