package ir

import (
	"strings"
	"testing"
)

// smallModule is train: h = matmul x, w; l = softmax_xent h, y; w' = sgd ...
func smallModule() (*Module, *Func) {
	f := &Func{Name: "train"}
	b := NewBuilder(f)
	x := b.Param("x", Tensor(F32, 4, 6), RoleInput)
	y := b.Param("y", Tensor(I32, 4), RoleInput)
	w := b.Param("w", Tensor(F32, 6, 3), RoleParam)
	v := b.Param("v", Tensor(F32, 6, 3), RoleState)
	h := b.V("matmul", nil, "h", x, w)
	loss := b.V("softmax_xent", nil, "loss", h, y)
	one := b.V("fill", Attrs{"shape": []int{}, "value": 1.0}, "one")
	g := b.V("softmax_xent_grad", nil, "g", h, y, one)
	gw := b.V("matmul", Attrs{"transpose_a": true}, "gw", x, g)
	lr := b.V("fill", Attrs{"shape": []int{}, "value": 0.1}, "lr")
	upd := b.Must("sgd", []*Value{w, gw, v, lr}, Attrs{"momentum": 0.9}, "w.new", "v.new")
	f.Outputs = []Output{
		{Name: "loss", Value: loss},
		{Name: "w", Value: upd.Results[0], Updates: w},
		{Name: "v", Value: upd.Results[1], Updates: v},
	}
	return &Module{Name: "small", Funcs: []*Func{f}}, f
}

func TestVerifyOK(t *testing.T) {
	m, _ := smallModule()
	if err := Verify(m); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(m *Module, f *Func)
		want   []string
	}{
		{"use before def", func(m *Module, f *Func) {
			f.Body[0], f.Body[1] = f.Body[1], f.Body[0]
		}, []string{"func @train: instruction 0 (%loss = softmax_xent): %h is used before its definition"}},
		{"wrong result type", func(m *Module, f *Func) {
			f.Body[0].Results[0].Type = Tensor(F32, 4, 4)
		}, []string{"instruction 0 (%h = matmul): result %h has type tensor<f32,[4,4]>, matmul gives tensor<f32,[4,3]>"}},
		{"unknown op", func(m *Module, f *Func) { f.Body[0].Op = "frob" }, []string{`instruction 0 (%h = frob): unknown op "frob"`}},
		{"bad attr", func(m *Module, f *Func) { f.Body[0].Attrs = Attrs{"transpose_a": "yes"} },
			[]string{`instruction 0 (%h = matmul): matmul: attribute "transpose_a" has the wrong type`}},
		{"wrong result count", func(m *Module, f *Func) {
			f.Body[0].Results = append(f.Body[0].Results, &Value{Name: "h2", Def: f.Body[0]})
		},
			[]string{"instruction 0 (%h, %h2 = matmul): has 2 results, matmul gives 1"}},
		{"bad Def", func(m *Module, f *Func) { f.Body[0].Results[0].Def = f.Body[1] },
			[]string{"result %h does not point back to its instruction"}},
		{"duplicate name", func(m *Module, f *Func) { f.Body[1].Results[0].Name = "h" },
			[]string{"instruction 1 (%h = softmax_xent): name %h is used by two values"}},
		{"value defined twice", func(m *Module, f *Func) { f.Body[1].Results = f.Body[0].Results },
			[]string{"%h is defined more than once"}},
		{"no role", func(m *Module, f *Func) { f.Params[0].Role = RoleNone }, []string{"param %x: has no role"}},
		{"updates an input", func(m *Module, f *Func) { f.Outputs[1].Updates = f.Params[0] },
			[]string{`output 1 ("w"): updates %x, whose role is "input" (want param or state)`}},
		{"updates a non-param", func(m *Module, f *Func) { f.Outputs[1].Updates = f.Body[0].Results[0] },
			[]string{`output 1 ("w"): updates %h, which is not a parameter of this function`}},
		{"updates wrong type", func(m *Module, f *Func) { f.Outputs[2].Value = f.Body[0].Results[0] },
			[]string{`output 2 ("v"): updates %v of type tensor<f32,[6,3]> with %h of type tensor<f32,[4,3]>`}},
		{"updated twice", func(m *Module, f *Func) { f.Outputs[2].Updates = f.Params[2]; f.Outputs[2].Value = f.Outputs[1].Value },
			[]string{`output 2 ("v"): updates %w, which output "w" already updates`}},
		{"duplicate output", func(m *Module, f *Func) { f.Outputs[2].Name = "w" }, []string{`output 2 ("w"): name used by two outputs`}},
		{"undefined output", func(m *Module, f *Func) { f.Outputs[0].Value = &Value{Name: "ghost"} },
			[]string{`output 0 ("loss"): %ghost is not defined in any function`}},
		{"value of another func", func(m *Module, f *Func) {
			g := &Func{Name: "eval"}
			b := NewBuilder(g)
			x := b.Param("x", Tensor(F32, 4, 6), RoleInput)
			g.Outputs = []Output{{Name: "h", Value: b.V("matmul", nil, "h", x, f.Params[2])}}
			m.Funcs = append(m.Funcs, g)
		}, []string{"func @eval: instruction 0 (%h = matmul): %w belongs to func @train"}},
		{"several problems", func(m *Module, f *Func) {
			f.Params[0].Role = RoleNone
			f.Body[0].Results[0].Type = Tensor(F32, 1)
		}, []string{"param %x: has no role", "result %h has type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := smallModule()
			tc.break_(m, f)
			err := Verify(m)
			if err == nil {
				t.Fatal("Verify accepted a broken module")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
