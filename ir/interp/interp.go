// Package interp evaluates graph-IR functions in float64. It is the
// numerical reference: autodiff is checked against finite differences
// through it, and the backends' kernels and fused plans against it.
package interp

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/ir"
)

// Tensor is a float64 (or int32) value with its shape.
type Tensor struct {
	Shape ir.Shape
	F     []float64 // f32 values, widened
	I     []int32   // i32 values
}

// NewF returns a zero f32 tensor of the given shape.
func NewF(shape ...int) *Tensor {
	s := ir.Shape(shape)
	return &Tensor{Shape: s, F: make([]float64, s.Elems())}
}

// Scalar returns a rank-0 f32 tensor.
func Scalar(v float64) *Tensor { return &Tensor{Shape: ir.Shape{}, F: []float64{v}} }

// Env maps values to their tensors.
type Env map[*ir.Value]*Tensor

// Run evaluates f with its parameters bound by name and returns every
// value's tensor.
func Run(f *ir.Func, args map[string]*Tensor) (Env, error) {
	env := Env{}
	for _, p := range f.Params {
		t, ok := args[p.Name]
		if !ok {
			return nil, fmt.Errorf("no value for parameter %%%s", p.Name)
		}
		if !t.Shape.Equal(p.Type.Shape) {
			return nil, fmt.Errorf("parameter %%%s: shape %v, want %v", p.Name, t.Shape, p.Type.Shape)
		}
		env[p] = t
	}
	for _, in := range f.Body {
		impl, ok := ops[in.Op]
		if !ok {
			return nil, fmt.Errorf("interp: no implementation of %s", in.Op)
		}
		args := make([]*Tensor, len(in.Args))
		for i, a := range in.Args {
			args[i] = env[a]
		}
		outs := make([]*Tensor, len(in.Results))
		for i, r := range in.Results {
			outs[i] = &Tensor{Shape: r.Type.Shape}
			if r.Type.DType == ir.I32 {
				outs[i].I = make([]int32, r.Type.Shape.Elems())
			} else {
				outs[i].F = make([]float64, r.Type.Shape.Elems())
			}
		}
		impl(in, args, outs)
		for i, r := range in.Results {
			env[r] = outs[i]
		}
	}
	return env, nil
}

type impl func(in *ir.Instr, args, outs []*Tensor)

func unary(f func(x float64) float64) impl {
	return func(_ *ir.Instr, a, o []*Tensor) {
		for i, x := range a[0].F {
			o[0].F[i] = f(x)
		}
	}
}

func binary(f func(x, y float64) float64) impl {
	return func(_ *ir.Instr, a, o []*Tensor) {
		for i := range o[0].F {
			o[0].F[i] = f(a[0].F[i], a[1].F[i])
		}
	}
}

// Act and ActGrad are the activations in float64.
func Act(name string, x float64) float64 {
	switch name {
	case "relu":
		return math.Max(x, 0)
	case "tanh":
		return math.Tanh(x)
	case "sigmoid":
		return 1 / (1 + math.Exp(-x))
	case "gelu":
		return 0.5 * x * (1 + math.Tanh(geluC*(x+0.044715*x*x*x)))
	}
	return x
}

var geluC = math.Sqrt(2 / math.Pi)

// ActGrad is d act / dx at x.
func ActGrad(name string, x float64) float64 {
	switch name {
	case "relu":
		if x > 0 {
			return 1
		}
		return 0
	case "tanh":
		t := math.Tanh(x)
		return 1 - t*t
	case "sigmoid":
		s := 1 / (1 + math.Exp(-x))
		return s * (1 - s)
	case "gelu":
		u := geluC * (x + 0.044715*x*x*x)
		t := math.Tanh(u)
		du := geluC * (1 + 3*0.044715*x*x)
		return 0.5*(1+t) + 0.5*x*(1-t*t)*du
	}
	return 1
}

var ops = map[string]impl{
	"neg":    unary(func(x float64) float64 { return -x }),
	"exp":    unary(math.Exp),
	"log":    unary(math.Log),
	"sqrt":   unary(math.Sqrt),
	"square": unary(func(x float64) float64 { return x * x }),
	"scale": func(in *ir.Instr, a, o []*Tensor) {
		f := in.Attrs.Float("factor", 1)
		for i, x := range a[0].F {
			o[0].F[i] = x * f
		}
	},
	"add": binary(func(x, y float64) float64 { return x + y }),
	"sub": binary(func(x, y float64) float64 { return x - y }),
	"mul": binary(func(x, y float64) float64 { return x * y }),
	"div": binary(func(x, y float64) float64 { return x / y }),
	"bias_add": func(_ *ir.Instr, a, o []*Tensor) {
		n := len(a[1].F)
		for i, x := range a[0].F {
			o[0].F[i] = x + a[1].F[i%n]
		}
	},
	"matmul": func(in *ir.Instr, a, o []*Tensor) {
		matmul(in, a[0], a[1], o[0])
	},
	"reduce_sum": func(in *ir.Instr, a, o []*Tensor) {
		axis := in.Attrs.Int("axis", 0)
		sh := a[0].Shape
		outer, inner := 1, 1
		for i := 0; i < axis; i++ {
			outer *= sh[i]
		}
		for i := axis + 1; i < len(sh); i++ {
			inner *= sh[i]
		}
		for p := 0; p < outer; p++ {
			for r := 0; r < sh[axis]; r++ {
				for q := 0; q < inner; q++ {
					o[0].F[p*inner+q] += a[0].F[(p*sh[axis]+r)*inner+q]
				}
			}
		}
	},
	"fill": func(in *ir.Instr, _, o []*Tensor) {
		v := in.Attrs.Float("value", 0)
		for i := range o[0].F {
			o[0].F[i] = v
		}
	},
	"softmax_xent": func(in *ir.Instr, a, o []*Tensor) {
		o[0].F[0], _ = xent(in.Attrs, a[0], a[1], 0, nil)
	},
	"softmax_xent_grad": func(in *ir.Instr, a, o []*Tensor) {
		xent(in.Attrs, a[0], a[1], a[2].F[0], o[0].F)
	},
	"softmax_xent_fused": func(in *ir.Instr, a, o []*Tensor) {
		o[0].F[0], _ = xent(in.Attrs, a[0], a[1], a[2].F[0], o[1].F)
	},
	"count_correct": func(_ *ir.Instr, a, o []*Tensor) {
		b, c := a[0].Shape[0], a[0].Shape[1]
		for r := 0; r < b; r++ {
			if a[1].I[r] < 0 {
				continue
			}
			row := a[0].F[r*c : (r+1)*c]
			best := 0
			for j := range row {
				if row[j] > row[best] {
					best = j
				}
			}
			if int32(best) == a[1].I[r] {
				o[0].F[0]++
			}
		}
	},
	"lr_schedule": func(in *ir.Instr, a, o []*Tensor) {
		o[0].F[0] = LR(in.Attrs, int(a[0].I[0]))
	},
	"sgd": func(in *ir.Instr, a, o []*Tensor) {
		m, wd, nest := in.Attrs.Float("momentum", 0), in.Attrs.Float("weight_decay", 0), in.Attrs.Bool("nesterov", false)
		lr := a[3].F[0]
		for i := range a[0].F {
			w, g := a[0].F[i], a[1].F[i]+wd*a[0].F[i]
			v := m*a[2].F[i] + g
			u := v
			if nest {
				u = g + m*v
			}
			o[0].F[i], o[1].F[i] = w-lr*u, v
		}
	},
	"adamw": func(in *ir.Instr, a, o []*Tensor) {
		b1, b2 := in.Attrs.Float("beta1", 0.9), in.Attrs.Float("beta2", 0.999)
		eps, wd := in.Attrs.Float("eps", 1e-8), in.Attrs.Float("weight_decay", 0)
		lr, t := a[4].F[0], float64(a[5].I[0]+1)
		c1, c2 := 1-math.Pow(b1, t), 1-math.Pow(b2, t)
		for i := range a[0].F {
			w, g := a[0].F[i], a[1].F[i]
			m := b1*a[2].F[i] + (1-b1)*g
			v := b2*a[3].F[i] + (1-b2)*g*g
			o[0].F[i] = w - lr*((m/c1)/(math.Sqrt(v/c2)+eps)+wd*w)
			o[1].F[i], o[2].F[i] = m, v
		}
	},
	"matmul_bias_act": func(in *ir.Instr, a, o []*Tensor) {
		matmul(in, a[0], a[1], o[0])
		act, n := in.Attrs.Str("act", "none"), o[0].Shape[1]
		for i := range o[0].F {
			if len(a) == 3 {
				o[0].F[i] += a[2].F[i%n]
			}
			o[0].F[i] = Act(act, o[0].F[i])
		}
	},
	"matmul_act_grad": func(in *ir.Instr, a, o []*Tensor) {
		matmul(in, a[0], a[1], o[0])
		act := in.Attrs.Str("act", "none")
		for i := range o[0].F {
			o[0].F[i] *= ActGrad(act, a[2].F[i])
		}
	},
}

func init() {
	for _, name := range ir.Activations {
		ops[name] = unary(func(x float64) float64 { return Act(name, x) })
		ops[name+"_grad"] = func(_ *ir.Instr, a, o []*Tensor) {
			for i := range o[0].F {
				o[0].F[i] = a[0].F[i] * ActGrad(name, a[1].F[i])
			}
		}
	}
}

// Has reports whether the interpreter implements op.
func Has(op string) bool { _, ok := ops[op]; return ok }

func matmul(in *ir.Instr, A, B, C *Tensor) {
	ta, tb := in.Attrs.Bool("transpose_a", false), in.Attrs.Bool("transpose_b", false)
	m, n := C.Shape[0], C.Shape[1]
	k := A.Shape[1]
	if ta {
		k = A.Shape[0]
	}
	at := func(i, p int) float64 {
		if ta {
			return A.F[p*A.Shape[1]+i]
		}
		return A.F[i*A.Shape[1]+p]
	}
	bt := func(p, j int) float64 {
		if tb {
			return B.F[j*B.Shape[1]+p]
		}
		return B.F[p*B.Shape[1]+j]
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += at(i, p) * bt(p, j)
			}
			C.F[i*n+j] = s
		}
	}
}

// xent computes the mean loss over rows with a label >= 0 and, when grad is
// not nil, dloss times its gradient with respect to the logits.
func xent(attrs ir.Attrs, logits, labels *Tensor, dloss float64, grad []float64) (float64, int) {
	s, z := attrs.Float("label_smoothing", 0), attrs.Float("z_loss", 0)
	b, c := logits.Shape[0], logits.Shape[1]
	valid := 0
	for _, y := range labels.I {
		if y >= 0 {
			valid++
		}
	}
	if valid == 0 {
		return 0, 0
	}
	var total float64
	for r := 0; r < b; r++ {
		y := int(labels.I[r])
		if y < 0 {
			continue
		}
		row := logits.F[r*c : (r+1)*c]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var sum, all float64
		for _, v := range row {
			sum += math.Exp(v - mx)
			all += v
		}
		lse := mx + math.Log(sum)
		total += lse - ((1-s)*row[y] + s/float64(c)*all) + z*lse*lse
		if grad != nil {
			for j, v := range row {
				p := math.Exp(v - lse)
				target := s / float64(c)
				if j == y {
					target += 1 - s
				}
				grad[r*c+j] = dloss / float64(valid) * (p - target + 2*z*lse*p)
			}
		}
	}
	return total / float64(valid), valid
}

// LR is the learning rate at a step (the lr_schedule op).
func LR(a ir.Attrs, step int) float64 {
	lr, warm := a.Float("lr", 0), a.Int("warmup", 0)
	if warm > 0 && step < warm {
		return lr * float64(step+1) / float64(warm)
	}
	if a.Str("kind", "constant") != "cosine" {
		return lr
	}
	minLR, total := a.Float("min_lr", 0), a.Int("total", 1)
	p := float64(step-warm) / math.Max(1, float64(total-warm))
	p = math.Min(math.Max(p, 0), 1)
	return minLR + (lr-minLR)*0.5*(1+math.Cos(math.Pi*p))
}
