package compiler

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// vjp computes the gradients of an instruction's arguments from the
// gradients of its results (nil entries: no gradient flows there). One rule
// per differentiable op, as a table.
type vjp func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value

var vjpRules = map[string]vjp{
	"neg": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("neg", nil, "d", dy)}
	},
	"exp": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("mul", nil, "d", dy, in.Result())}
	},
	"log": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("div", nil, "d", dy, in.Args[0])}
	},
	"sqrt": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		q := b.V("div", nil, "d", dy, in.Result())
		return []*ir.Value{b.V("scale", ir.Attrs{"factor": 0.5}, "d", q)}
	},
	"square": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		p := b.V("mul", nil, "d", dy, in.Args[0])
		return []*ir.Value{b.V("scale", ir.Attrs{"factor": 2.0}, "d", p)}
	},
	"scale": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("scale", ir.Attrs{"factor": in.Attrs.Float("factor", 1)}, "d", dy)}
	},
	"add": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{dy, dy}
	},
	"sub": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{dy, b.V("neg", nil, "d", dy)}
	},
	"mul": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("mul", nil, "d", dy, in.Args[1]), b.V("mul", nil, "d", dy, in.Args[0])}
	},
	"div": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		// d/dx = dy/y; d/dy = -dy·(x/y)/y
		dx := b.V("div", nil, "d", dy, in.Args[1])
		dq := b.V("mul", nil, "d", dx, in.Result())
		return []*ir.Value{dx, b.V("neg", nil, "d", dq)}
	},
	"bias_add": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		db := dy
		for db.Type.Rank() > 1 { // sum over every leading axis
			db = b.V("reduce_sum", ir.Attrs{"axis": 0}, "d", db)
		}
		return []*ir.Value{dy, db}
	},
	"matmul": matmulVJP,
	"softmax_xent": func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
		return []*ir.Value{b.V("softmax_xent_grad", in.Attrs.Clone(), "d", in.Args[0], in.Args[1], dy), nil}
	},
}

func init() {
	for _, act := range ir.Activations {
		grad := act + "_grad"
		vjpRules[act] = func(b *ir.Builder, in *ir.Instr, dy *ir.Value) []*ir.Value {
			x := in.Args[0]
			if act == "relu" {
				// relu(x) > 0 exactly when x > 0, so the gradient can read the
				// output: the pre-activation then has a single use and the
				// forward GEMM can fuse bias and relu into its epilogue.
				x = in.Result()
			}
			return []*ir.Value{b.V(grad, nil, "d", dy, x)}
		}
		NotDifferentiable[grad] = "a gradient itself (no second derivatives yet)"
	}
}

// NotDifferentiable lists the graph ops that have no gradient rule on
// purpose: they appear only in backward passes, optimizer updates or
// metrics. A test checks that every op is either here, fused, or has a rule.
var NotDifferentiable = map[string]string{
	"reduce_sum":        "used only for bias gradients",
	"fill":              "a constant",
	"softmax_xent_grad": "a gradient itself",
	"count_correct":     "a metric (piecewise constant)",
	"lr_schedule":       "schedule, not a function of the parameters",
	"sgd":               "an update",
	"adamw":             "an update",
}

// HasGradient reports whether autodiff can differentiate through op.
func HasGradient(op string) bool { _, ok := vjpRules[op]; return ok }

// matmulVJP: for C = op(A)·op(B) the gradients are again matmuls with the
// transposes folded into flags, so no transpose is ever materialised.
func matmulVJP(b *ir.Builder, in *ir.Instr, dC *ir.Value) []*ir.Value {
	A, B := in.Args[0], in.Args[1]
	ta, tb := in.Attrs.Bool("transpose_a", false), in.Attrs.Bool("transpose_b", false)
	mm := func(x, y *ir.Value, tx, ty bool) *ir.Value {
		return b.V("matmul", ir.Attrs{"transpose_a": tx, "transpose_b": ty}, "d", x, y)
	}
	switch {
	case !ta && !tb: // C = A·B
		return []*ir.Value{mm(dC, B, false, true), mm(A, dC, true, false)}
	case !ta && tb: // C = A·Bᵀ
		return []*ir.Value{mm(dC, B, false, false), mm(dC, A, true, false)}
	case ta && !tb: // C = Aᵀ·B
		return []*ir.Value{mm(B, dC, false, true), mm(A, dC, false, false)}
	default: // C = Aᵀ·Bᵀ
		return []*ir.Value{mm(B, dC, true, true), mm(dC, A, true, true)}
	}
}

// Grad appends to f the reverse-mode gradient of the scalar loss with
// respect to each of wrt, and returns the gradient values in wrt's order.
// A parameter the loss does not depend on gets a zero gradient.
func Grad(b *ir.Builder, loss *ir.Value, wrt []*ir.Value) ([]*ir.Value, error) {
	if !loss.Type.Equal(ir.Scalar(ir.F32)) {
		return nil, fmt.Errorf("loss must be a f32 scalar, got %s", loss.Type)
	}
	one := b.V("fill", ir.Attrs{"value": 1.0, "shape": []int{}}, "dloss")
	return VJP(b, loss, one, wrt)
}

// VJP appends the vector-Jacobian product: the gradients of <y, dy> with
// respect to each of wrt. Grad is VJP with dy = 1 for a scalar loss.
func VJP(b *ir.Builder, y, dy *ir.Value, wrt []*ir.Value) ([]*ir.Value, error) {
	if !y.Type.Equal(dy.Type) {
		return nil, fmt.Errorf("seed %s does not match %s", dy.Type, y.Type)
	}
	// Only instructions on a path to y need gradients.
	body := append([]*ir.Instr(nil), b.F.Body...)
	needed := liveBackward(body, y)
	grads := map[*ir.Value]*ir.Value{y: dy}
	for i := len(body) - 1; i >= 0; i-- {
		in := body[i]
		if !needed[in] || len(in.Results) != 1 {
			continue
		}
		dy := grads[in.Result()]
		if dy == nil {
			continue
		}
		rule, ok := vjpRules[in.Op]
		if !ok {
			return nil, fmt.Errorf("op %s has no gradient rule", in.Op)
		}
		b.Loc = in.Loc
		mark := len(b.F.Body)
		for j, g := range rule(b, in, dy) {
			if g == nil {
				continue
			}
			a := in.Args[j]
			if prev := grads[a]; prev != nil {
				g = b.V("add", nil, "d", prev, g)
			}
			if g != dy && definedSince(b.F, mark, g) {
				g.Name = b.Fresh("d." + a.Name) // read as "the gradient of a"
			}
			grads[a] = g
		}
	}
	out := make([]*ir.Value, len(wrt))
	for i, w := range wrt {
		g := grads[w]
		if g == nil {
			g = b.V("fill", ir.Attrs{"value": 0.0, "shape": append([]int{}, w.Type.Shape...)}, "d."+w.Name)
		}
		out[i] = g
	}
	return out, nil
}

// definedSince reports whether v is a result of an instruction appended at
// or after body index mark.
func definedSince(f *ir.Func, mark int, v *ir.Value) bool {
	for _, in := range f.Body[mark:] {
		if in == v.Def {
			return true
		}
	}
	return false
}

// liveBackward marks the instructions whose results y depends on.
func liveBackward(body []*ir.Instr, y *ir.Value) map[*ir.Instr]bool {
	need := map[*ir.Value]bool{y: true}
	marked := map[*ir.Instr]bool{}
	for i := len(body) - 1; i >= 0; i-- {
		in := body[i]
		for _, r := range in.Results {
			if need[r] {
				marked[in] = true
				for _, a := range in.Args {
					need[a] = true
				}
				break
			}
		}
	}
	return marked
}
