package lowering

import (
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// passCase runs graph passes on a module in text form and compares the
// body of each function with want (see body); the outputs must not change
// on fresh random inputs.
type passCase struct {
	name   string
	passes []string
	src    string
	want   []string // one per function
}

func (tc passCase) run(t *testing.T) *Unit {
	t.Helper()
	before := parseModule(t, tc.src)
	u := newUnit(parseModule(t, tc.src))
	for _, p := range tc.passes {
		runPass(t, u, p)
	}
	for i, f := range u.Module.Funcs {
		if got := body(f); got != tc.want[i] {
			t.Errorf("func %s after %v:\n%s\nwant\n%s", f.Name, tc.passes, got, tc.want[i])
		}
		for seed := uint64(1); seed <= 3; seed++ {
			args := randomArgs(f, seed, 3)
			sameOutputs(t, f.Name, outputs(t, before.Funcs[i], args), outputs(t, f, args), 1e-12)
		}
	}
	return u
}

func TestCanonicalize(t *testing.T) {
	for _, tc := range []passCase{{
		name:   "identities",
		passes: []string{"canonicalize", "dce"},
		src: `module m
func @f(%x: tensor<f32,[2,3]> input, %y: tensor<f32,[2,3]> input) {
  %s = scale %x {factor = 1}
  %n1 = neg %s
  %n2 = neg %n1
  %a = add %y, %n2
  %b = add %n1, %y
  %c = sub %a, %n1
  %d = mul %c, %b
  return %d as "d", %s as "s"
}`,
		// %n1 dies: the adds and subs of it fold; commutative arguments
		// go in definition order (parameters first).
		want: []string{`%a = add %x, %y
%b = sub %y, %x
%c = add %x, %a
%d = mul %b, %c
return d=%d, s=%x`},
	}, {
		name:   "attributes",
		passes: []string{"canonicalize"},
		src: `module m
func @f(%a: tensor<f32,[2,3]> input, %b: tensor<f32,[3,4]> input) {
  %m = matmul %a, %b {transpose_a = false, transpose_b = false}
  %s = scale %m {factor = 2}
  return %s as "s"
}`,
		want: []string{`%m = matmul %a, %b
%s = scale %m {factor = 2.0}
return s=%s`},
	}, {
		name:   "in-place update keeps its value",
		passes: []string{"canonicalize", "dce"},
		src: `module m
func @f(%w: tensor<f32,[3]> param init="zeros", %g: tensor<f32,[3]> input) {
  %w.new = scale %g {factor = 1.0}
  return %w.new as "w" updates %w
}`,
		want: []string{`%w.new = scale %g {factor = 1.0}
return w=%w.new updates %w`},
	}} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t) })
	}
}

func TestCSE(t *testing.T) {
	passCase{
		passes: []string{"canonicalize", "cse"},
		src: `module m
func @f(%x: tensor<f32,[2,3]> input, %y: tensor<f32,[2,3]> input, %w: tensor<f32,[2,3]> param init="zeros",
        %v: tensor<f32,[2,3]> state, %lr: tensor<f32,[]> input) {
  %a = add %x, %y
  %b = add %y, %x
  %c = mul %a, %b
  %e1 = exp %c
  %e2 = exp %c
  %s1 = scale %e1 {factor = 2.0}
  %s2 = scale %e2 {factor = 3.0}
  %s3 = scale %e2 {factor = 2}
  %t = add %s1, %s2
  %u = add %t, %s3
  %w.new, %v.new = sgd %w, %u, %v, %lr
  %w.new2, %v.new2 = sgd %w, %u, %v, %lr
  return %u as "u", %w.new as "w" updates %w, %v.new2 as "v" updates %v
}
func @g(%x: tensor<f32,[2,3]> input, %y: tensor<f32,[2,3]> input) {
  %a = add %x, %y
  return %a as "a"
}`,
		want: []string{`%a = add %x, %y
%c = mul %a, %a
%e1 = exp %c
%s1 = scale %e1 {factor = 2.0}
%s2 = scale %e1 {factor = 3.0}
%t = add %s1, %s2
%u = add %s1, %t
%w.new, %v.new = sgd %w, %u, %v, %lr
%w.new2, %v.new2 = sgd %w, %u, %v, %lr
return u=%u, w=%w.new updates %w, v=%v.new2 updates %v`, `%a = add %x, %y
return a=%a`},
	}.run(t)
}

func TestDCE(t *testing.T) {
	passCase{
		passes: []string{"dce"},
		src: `module m
func @f(%x: tensor<f32,[3]> input, %w: tensor<f32,[3]> param init="zeros", %v: tensor<f32,[3]> state, %lr: tensor<f32,[]> input) {
  %dead1 = exp %x
  %dead2 = neg %dead1
  %live = neg %x
  %w.new, %v.new = sgd %w, %x, %v, %lr
  %unused = fill {value = 2.0, shape = [3]}
  return %live as "live"
}`,
		want: []string{`%live = neg %x
%w.new, %v.new = sgd %w, %x, %v, %lr
return live=%live`},
	}.run(t)
}

func TestFusion(t *testing.T) {
	const params = `%a: tensor<f32,[4,3]> input, %b: tensor<f32,[3,5]> input, %bias: tensor<f32,[5]> input, ` +
		`%x: tensor<f32,[4,5]> input, %dy: tensor<f32,[5,3]> input`
	for _, tc := range []struct {
		passCase
		fusedFrom []string
	}{{
		passCase: passCase{name: "matmul bias act", src: `
  %m = matmul %a, %b
  %z = bias_add %m, %bias
  %r = gelu %z
  return %r as "r"`, want: []string{`%r = matmul_bias_act %a, %b, %bias {act = "gelu"}
return r=%r`}},
		fusedFrom: []string{"matmul", "bias_add", "gelu"},
	}, {
		passCase: passCase{name: "matmul bias", src: `
  %m = matmul %a, %b
  %z = bias_add %m, %bias
  return %z as "z"`, want: []string{`%z = matmul_bias_act %a, %b, %bias {act = "none"}
return z=%z`}},
		fusedFrom: []string{"matmul", "bias_add"},
	}, {
		passCase: passCase{name: "matmul act", src: `
  %m = matmul %a, %b
  %r = tanh %m
  return %r as "r"`, want: []string{`%r = matmul_bias_act %a, %b {act = "tanh"}
return r=%r`}},
		fusedFrom: []string{"matmul", "tanh"},
	}, {
		passCase: passCase{name: "matmul act grad", src: `
  %m = matmul %a, %dy {transpose_b = true}
  %g = sigmoid_grad %m, %x
  return %g as "g"`, want: []string{`%g = matmul_act_grad %a, %dy, %x {act = "sigmoid", transpose_b = true}
return g=%g`}},
		fusedFrom: []string{"matmul", "sigmoid_grad"},
	}, {
		passCase: passCase{name: "bias_add has another use", src: `
  %m = matmul %a, %b
  %z = bias_add %m, %bias
  %r = relu %z
  %g = relu_grad %x, %z
  return %r as "r", %g as "g"`, want: []string{`%z = matmul_bias_act %a, %b, %bias {act = "none"}
%r = relu %z
%g = relu_grad %x, %z
return r=%r, g=%g`}},
		fusedFrom: []string{"matmul", "bias_add"},
	}, {
		passCase: passCase{name: "matmul is an output", src: `
  %m = matmul %a, %b
  %r = relu %m
  return %r as "r", %m as "m"`, want: []string{`%m = matmul %a, %b
%r = relu %m
return r=%r, m=%m`}},
	}, {
		passCase: passCase{name: "matmul has two users", src: `
  %m = matmul %a, %b
  %r = relu %m
  %s = add %m, %x
  return %r as "r", %s as "s"`, want: []string{`%m = matmul %a, %b
%r = relu %m
%s = add %m, %x
return r=%r, s=%s`}},
	}, {
		passCase: passCase{name: "act grad reads the matmul as x", src: `
  %m = matmul %a, %b
  %g = relu_grad %x, %m
  return %g as "g"`, want: []string{`%m = matmul %a, %b
%g = relu_grad %x, %m
return g=%g`}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.passes = []string{"fuse-elementwise"}
			tc.src = "module m\nfunc @f(" + params + ") {" + tc.src + "\n}"
			u := tc.run(t)
			checkFusedFrom(t, u, tc.fusedFrom)
		})
	}
}

func checkFusedFrom(t *testing.T, u *Unit, want []string) {
	t.Helper()
	var got []string
	for _, f := range u.Module.Funcs {
		for _, in := range f.Body {
			got = append(got, u.FusedFrom[in]...)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("fused_from %v, want %v", got, want)
	}
}

func TestFuseSoftmaxXent(t *testing.T) {
	const sig = `func @f(%l: tensor<f32,[4,3]> input, %y: tensor<i32,[4]> input, %s: tensor<f32,[]> input) {`
	for _, tc := range []struct {
		passCase
		fusedFrom []string
	}{{
		passCase: passCase{name: "pair", src: `
  %loss = softmax_xent %l, %y {label_smoothing = 0.1}
  %d = fill {value = 1.0, shape = []}
  %g = softmax_xent_grad %l, %y, %d {label_smoothing = 0.1}
  return %loss as "loss", %g as "g"`, want: []string{`%d = fill {shape = [], value = 1.0}
%loss, %g = softmax_xent_fused %l, %y, %d {label_smoothing = 0.1}
return loss=%loss, g=%g`}},
		fusedFrom: []string{"softmax_xent", "softmax_xent_grad"},
	}, {
		passCase: passCase{name: "grad first", src: `
  %g = softmax_xent_grad %l, %y, %s
  %loss = softmax_xent %l, %y
  %t = scale %loss {factor = 2.0}
  return %t as "t", %g as "g"`, want: []string{`%loss, %g = softmax_xent_fused %l, %y, %s
%t = scale %loss {factor = 2.0}
return t=%t, g=%g`}},
		fusedFrom: []string{"softmax_xent", "softmax_xent_grad"},
	}, {
		passCase: passCase{name: "different attributes", src: `
  %loss = softmax_xent %l, %y {label_smoothing = 0.1}
  %g = softmax_xent_grad %l, %y, %s
  return %loss as "loss", %g as "g"`, want: []string{`%loss = softmax_xent %l, %y {label_smoothing = 0.1}
%g = softmax_xent_grad %l, %y, %s
return loss=%loss, g=%g`}},
	}, {
		passCase: passCase{name: "dloss depends on the loss", src: `
  %loss = softmax_xent %l, %y
  %d = scale %loss {factor = 0.5}
  %g = softmax_xent_grad %l, %y, %d
  return %g as "g"`, want: []string{`%loss = softmax_xent %l, %y
%d = scale %loss {factor = 0.5}
%g = softmax_xent_grad %l, %y, %d
return g=%g`}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.passes = []string{"fuse-elementwise"}
			tc.src = "module m\n" + sig + tc.src + "\n}"
			checkFusedFrom(t, tc.run(t), tc.fusedFrom)
		})
	}
}

// The graph passes together keep the MLP's function on fresh inputs.
func TestGraphPassesKeepSemantics(t *testing.T) {
	before := mlpModule()
	u := newUnit(mlpModule())
	for _, p := range Pipeline {
		if p.Stage == Graph {
			runPass(t, u, p.Name)
		}
	}
	for i, f := range u.Module.Funcs {
		for seed := uint64(1); seed <= 3; seed++ {
			args := randomArgs(f, seed, 3)
			sameOutputs(t, f.Name, outputs(t, before.Funcs[i], args), outputs(t, f, args), 1e-12)
		}
	}
	text := ir.Print(u.Module)
	for _, op := range []string{"matmul_act_grad", "softmax_xent_fused", `matmul_bias_act %x, %w1, %b1 {act = "relu"}`} {
		if !strings.Contains(text, op) {
			t.Errorf("no %s in\n%s", op, text)
		}
	}
}
