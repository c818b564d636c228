package lowering

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
)

// mlpModule is a 2-layer MLP: a train function (forward, hand-written
// backward, SGD with momentum) and an eval function (forward, loss,
// accuracy) sharing the parameters by name.
func mlpModule() *ir.Module {
	const batch, in, hidden, classes = 8, 6, 5, 3
	train := &ir.Func{Name: "train"}
	b := ir.NewBuilder(train)
	x := b.Param("x", ir.Tensor(ir.F32, batch, in), ir.RoleInput)
	y := b.Param("y", ir.Tensor(ir.I32, batch), ir.RoleInput)
	step := b.Param("step", ir.Scalar(ir.I32), ir.RoleInput)
	w1, b1, w2, b2 := mlpParams(b, in, hidden, classes)
	var vel []*ir.Value
	for _, p := range []*ir.Value{w1, b1, w2, b2} {
		vel = append(vel, b.Param("v_"+p.Name, p.Type, ir.RoleState))
	}
	z1, logits := mlpForward(b, x, w1, b1, w2, b2)
	loss := b.V("softmax_xent", nil, "loss", logits, y)
	one := b.V("fill", ir.Attrs{"value": 1.0, "shape": []int{}}, "one")
	dlogits := b.V("softmax_xent_grad", nil, "dlogits", logits, y, one)
	a1 := b.V("relu", nil, "a1.bwd", z1) // recomputed for the backward pass; CSE merges it
	gw2 := b.V("matmul", ir.Attrs{"transpose_a": true}, "gw2", a1, dlogits)
	gb2 := b.V("reduce_sum", ir.Attrs{"axis": 0}, "gb2", dlogits)
	da1 := b.V("matmul", ir.Attrs{"transpose_b": true}, "da1", dlogits, w2)
	dz1 := b.V("relu_grad", nil, "dz1", da1, z1)
	gw1 := b.V("matmul", ir.Attrs{"transpose_a": true}, "gw1", x, dz1)
	gb1 := b.V("reduce_sum", ir.Attrs{"axis": 0}, "gb1", dz1)
	lr := b.V("lr_schedule", ir.Attrs{"kind": "constant", "lr": 0.1}, "lr", step)
	train.Outputs = append(train.Outputs, ir.Output{Name: "loss", Value: loss})
	for i, pg := range [][2]*ir.Value{{w1, gw1}, {b1, gb1}, {w2, gw2}, {b2, gb2}} {
		up := b.Must("sgd", []*ir.Value{pg[0], pg[1], vel[i], lr}, ir.Attrs{"momentum": 0.9},
			pg[0].Name+".new", vel[i].Name+".new")
		train.Outputs = append(train.Outputs,
			ir.Output{Name: pg[0].Name, Value: up.Results[0], Updates: pg[0]},
			ir.Output{Name: vel[i].Name, Value: up.Results[1], Updates: vel[i]})
	}

	eval := &ir.Func{Name: "eval"}
	b = ir.NewBuilder(eval)
	x = b.Param("x", ir.Tensor(ir.F32, batch, in), ir.RoleInput)
	y = b.Param("y", ir.Tensor(ir.I32, batch), ir.RoleInput)
	w1, b1, w2, b2 = mlpParams(b, in, hidden, classes)
	_, logits = mlpForward(b, x, w1, b1, w2, b2)
	eval.Outputs = []ir.Output{
		{Name: "loss", Value: b.V("softmax_xent", nil, "loss", logits, y)},
		{Name: "correct", Value: b.V("count_correct", nil, "correct", logits, y)},
	}
	return &ir.Module{Name: "mlp", Funcs: []*ir.Func{train, eval}}
}

func mlpParams(b *ir.Builder, in, hidden, classes int) (w1, b1, w2, b2 *ir.Value) {
	param := func(name, init string, dims ...int) *ir.Value {
		v := b.Param(name, ir.Tensor(ir.F32, dims...), ir.RoleParam)
		v.Init = init
		return v
	}
	return param("w1", "he_normal", in, hidden), param("b1", "zeros", hidden),
		param("w2", "xavier_uniform", hidden, classes), param("b2", "zeros", classes)
}

func mlpForward(b *ir.Builder, x, w1, b1, w2, b2 *ir.Value) (z1, logits *ir.Value) {
	h1 := b.V("matmul", nil, "h1", x, w1)
	z1 = b.V("bias_add", nil, "z1", h1, b1)
	a1 := b.V("relu", nil, "a1", z1)
	h2 := b.V("matmul", nil, "h2", a1, w2)
	return z1, b.V("bias_add", nil, "logits", h2, b2)
}

// newUnit wraps a module with an empty plan.
func newUnit(m *ir.Module) *Unit {
	return &Unit{Module: m, Plan: &ir.Plan{Format: ir.PlanFormat, Name: m.Name, Target: "cpu"}}
}

// parseModule parses the text form, failing the test on error.
func parseModule(t *testing.T, src string) *ir.Module {
	t.Helper()
	m, err := ir.Parse(src)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	if err := ir.Verify(m); err != nil {
		t.Fatalf("test module is invalid: %v", err)
	}
	return m
}

// runPass runs one pass of Pipeline by name through the driver (verifying
// after it).
func runPass(t *testing.T, u *Unit, name string) bool {
	t.Helper()
	for _, p := range Pipeline {
		if p.Name == name {
			p.After = nil // run alone
			if _, err := runPasses(u, []Pass{p}, Config{OptLevel: 1, Verify: true}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return u.Plan.Passes[len(u.Plan.Passes)-1].Changed
		}
	}
	t.Fatalf("no pass %s", name)
	return false
}

// body prints a function's instructions, one per line, without types and
// locations: the shape of the code a pass test looks at.
func body(f *ir.Func) string {
	var lines []string
	for _, in := range f.Body {
		line := ir.PrintInstr(in)
		if i := strings.Index(line, "  //"); i >= 0 {
			line = line[:i]
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	var outs []string
	for _, o := range f.Outputs {
		s := o.Name + "=%" + o.Value.Name
		if o.Updates != nil {
			s += " updates %" + o.Updates.Name
		}
		outs = append(outs, s)
	}
	return strings.Join(lines, "\n") + "\nreturn " + strings.Join(outs, ", ")
}

// randomArgs gives every parameter of f fresh random values (labels in
// range, step a small positive number), from a seeded source.
func randomArgs(f *ir.Func, seed uint64, classes int) map[string]*interp.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	args := map[string]*interp.Tensor{}
	for _, p := range f.Params {
		t := &interp.Tensor{Shape: p.Type.Shape}
		n := int(p.Type.Shape.Elems())
		switch {
		case p.Type.DType == ir.I32 && p.Type.Rank() == 0:
			t.I = []int32{int32(1 + rng.IntN(10))}
		case p.Type.DType == ir.I32:
			t.I = make([]int32, n)
			for i := range t.I {
				t.I[i] = int32(rng.IntN(classes))
			}
		default:
			t.F = make([]float64, n)
			for i := range t.F {
				t.F[i] = rng.NormFloat64()
			}
		}
		args[p.Name] = t
	}
	return args
}

// outputs evaluates f and returns its outputs by name.
func outputs(t *testing.T, f *ir.Func, args map[string]*interp.Tensor) map[string]*interp.Tensor {
	t.Helper()
	env, err := interp.Run(f, args)
	if err != nil {
		t.Fatalf("interp %s: %v", f.Name, err)
	}
	out := map[string]*interp.Tensor{}
	for _, o := range f.Outputs {
		v, ok := env[o.Value]
		if !ok {
			v = args[o.Value.Name] // a parameter passed straight through
		}
		out[o.Name] = v
	}
	return out
}

// sameOutputs compares two output sets to a relative tolerance.
func sameOutputs(t *testing.T, what string, want, got map[string]*interp.Tensor, tol float64) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d outputs, want %d", what, len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if g == nil || !g.Shape.Equal(w.Shape) || len(g.F) != len(w.F) || len(g.I) != len(w.I) {
			t.Fatalf("%s: output %q missing or of a different shape", what, name)
		}
		for i := range w.F {
			if d := math.Abs(g.F[i] - w.F[i]); d > tol*(1+math.Abs(w.F[i])) || math.IsNaN(g.F[i]) != math.IsNaN(w.F[i]) {
				t.Fatalf("%s: output %q[%d] = %v, want %v", what, name, i, g.F[i], w.F[i])
			}
		}
		for i := range w.I {
			if g.I[i] != w.I[i] {
				t.Fatalf("%s: output %q[%d] = %d, want %d", what, name, i, g.I[i], w.I[i])
			}
		}
	}
}

func planJSON(t *testing.T, p *ir.Plan) string {
	t.Helper()
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
