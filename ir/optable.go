package ir

import "fmt"

// Activations are the pointwise nonlinearities; each has a gradient op
// named <name>_grad taking (dy, x) where x is the activation's input.
var Activations = []string{"relu", "gelu", "tanh", "sigmoid"}

// The op table. Graph ops come first, then the fused ops that lowering
// passes create. Gradient rules live in compiler/autodiff, kernels in the
// backends: this table only says what an op is.
func init() {
	for _, name := range []string{"neg", "exp", "log", "sqrt", "square"} {
		Register(unary(name, "elementwise "+name))
	}
	for _, name := range Activations {
		Register(unary(name, "activation "+name))
		Register(&OpDef{Name: name + "_grad", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true, Elementwise: true,
			Infer: sameShapeF32, Doc: "dy * " + name + "'(x) for (dy, x)"})
	}
	Register(&OpDef{Name: "scale", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true, Elementwise: true,
		Attrs: []AttrDef{{Name: "factor", Kind: AttrFloat, Required: true}},
		Infer: sameShapeF32, Doc: "x * factor"})
	for _, b := range []struct {
		name, doc string
		comm      bool
	}{{"add", "x + y", true}, {"sub", "x - y", false}, {"mul", "x * y", true}, {"div", "x / y", false}} {
		Register(&OpDef{Name: b.name, MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true, Elementwise: true,
			Commutative: b.comm, Infer: sameShapeF32, Doc: b.doc})
	}
	Register(&OpDef{Name: "bias_add", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: inferBiasAdd, Doc: "x[..., n] + b[n]"})
	Register(&OpDef{Name: "matmul", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "transpose_a", Kind: AttrBool}, {Name: "transpose_b", Kind: AttrBool}},
		Infer: inferMatmul, Doc: "op(a) · op(b), op = transpose when the flag is set"})
	Register(&OpDef{Name: "reduce_sum", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "axis", Kind: AttrInt, Required: true}},
		Infer: inferReduce, Doc: "sum over one axis"})
	Register(&OpDef{Name: "fill", MinArgs: 0, MaxArgs: 0, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "value", Kind: AttrFloat, Required: true}, {Name: "shape", Kind: AttrInts, Required: true}},
		Infer: func(_ []Type, a Attrs) ([]Type, error) {
			return []Type{{DType: F32, Shape: Shape(append([]int{}, a.Ints("shape")...))}}, nil
		}, Doc: "a constant tensor"})
	xentAttrs := []AttrDef{{Name: "label_smoothing", Kind: AttrFloat}, {Name: "z_loss", Kind: AttrFloat}}
	Register(&OpDef{Name: "softmax_xent", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true, Attrs: xentAttrs,
		Infer: inferXent(false), Doc: "mean softmax cross-entropy (+ z_loss·mean lse²) over rows whose label is >= 0"})
	Register(&OpDef{Name: "softmax_xent_grad", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true, Attrs: xentAttrs,
		Infer: inferXentGrad, Doc: "d softmax_xent / d logits, times the scalar dloss"})
	Register(&OpDef{Name: "count_correct", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: inferXent(false), Doc: "number of rows whose argmax equals the label"})
	Register(&OpDef{Name: "lr_schedule", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: []AttrDef{
			{Name: "kind", Kind: AttrString, Required: true, OneOf: []string{"constant", "cosine"}},
			{Name: "lr", Kind: AttrFloat, Required: true}, {Name: "min_lr", Kind: AttrFloat},
			{Name: "warmup", Kind: AttrInt}, {Name: "total", Kind: AttrInt},
		},
		Infer: inferSchedule, Doc: "learning rate at a step: linear warmup, then constant or cosine decay"})
	Register(&OpDef{Name: "sgd", MinArgs: 4, MaxArgs: 4, Results: 2,
		Attrs: []AttrDef{{Name: "momentum", Kind: AttrFloat}, {Name: "weight_decay", Kind: AttrFloat}, {Name: "nesterov", Kind: AttrBool}},
		Infer: inferOptimizer(2), Doc: "(w, g, v, lr) -> (w', v'): SGD with momentum and coupled weight decay"})
	Register(&OpDef{Name: "adamw", MinArgs: 6, MaxArgs: 6, Results: 3,
		Attrs: []AttrDef{{Name: "beta1", Kind: AttrFloat}, {Name: "beta2", Kind: AttrFloat}, {Name: "eps", Kind: AttrFloat}, {Name: "weight_decay", Kind: AttrFloat}},
		Infer: inferOptimizer(3), Doc: "(w, g, m, v, lr, step) -> (w', m', v'): Adam with decoupled weight decay"})

	// Fused ops, created by lowering passes.
	gemmAttrs := []AttrDef{{Name: "transpose_a", Kind: AttrBool}, {Name: "transpose_b", Kind: AttrBool},
		{Name: "act", Kind: AttrString, OneOf: append([]string{"none"}, Activations...)}}
	Register(&OpDef{Name: "matmul_bias_act", MinArgs: 2, MaxArgs: 3, Results: 1, Pure: true, Fused: true, Attrs: gemmAttrs,
		Infer: inferGemmEpilogue, Doc: "act(op(a)·op(b) + bias): a GEMM with its epilogue fused"})
	Register(&OpDef{Name: "matmul_act_grad", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true, Fused: true, Attrs: gemmAttrs,
		Infer: inferGemmEpilogue, Doc: "(op(a)·op(b)) * act'(x): a backward GEMM with the activation gradient fused"})
	Register(&OpDef{Name: "softmax_xent_fused", MinArgs: 3, MaxArgs: 3, Results: 2, Pure: true, Fused: true, Attrs: xentAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			l, err := inferXent(false)(args[:2], a)
			if err != nil {
				return nil, err
			}
			g, err := inferXentGrad(args, a)
			if err != nil {
				return nil, err
			}
			return []Type{l[0], g[0]}, nil
		}, Doc: "loss and d loss/d logits in one pass over the logits"})
}

func unary(name, doc string) *OpDef {
	return &OpDef{Name: name, MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true, Elementwise: true, Infer: sameShapeF32, Doc: doc}
}

func sameShapeF32(args []Type, _ Attrs) ([]Type, error) {
	for i, t := range args {
		if t.DType != F32 {
			return nil, fmt.Errorf("argument %d is %s, want f32", i, t)
		}
		if !t.Shape.Equal(args[0].Shape) {
			return nil, fmt.Errorf("shapes differ: %s vs %s", args[0], t)
		}
	}
	return []Type{args[0]}, nil
}

func inferBiasAdd(args []Type, _ Attrs) ([]Type, error) {
	x, b := args[0], args[1]
	if x.DType != F32 || b.DType != F32 || x.Rank() < 1 || b.Rank() != 1 || x.Shape[x.Rank()-1] != b.Shape[0] {
		return nil, fmt.Errorf("want x[..., n] and b[n], got %s and %s", x, b)
	}
	return []Type{x}, nil
}

// MatmulDims returns m, k, n of op(a)·op(b).
func MatmulDims(a, b Type, ta, tb bool) (m, k, n int, err error) {
	if a.Rank() != 2 || b.Rank() != 2 || a.DType != F32 || b.DType != F32 {
		return 0, 0, 0, fmt.Errorf("want two f32 matrices, got %s and %s", a, b)
	}
	m, k = a.Shape[0], a.Shape[1]
	if ta {
		m, k = k, m
	}
	k2, n := b.Shape[0], b.Shape[1]
	if tb {
		k2, n = n, k2
	}
	if k != k2 {
		return 0, 0, 0, fmt.Errorf("inner dimensions differ: %s · %s (transpose_a=%v, transpose_b=%v)", a, b, ta, tb)
	}
	return m, k, n, nil
}

func inferMatmul(args []Type, a Attrs) ([]Type, error) {
	m, _, n, err := MatmulDims(args[0], args[1], a.Bool("transpose_a", false), a.Bool("transpose_b", false))
	if err != nil {
		return nil, err
	}
	return []Type{Tensor(F32, m, n)}, nil
}

func inferGemmEpilogue(args []Type, a Attrs) ([]Type, error) {
	out, err := inferMatmul(args[:2], a)
	if err != nil {
		return nil, err
	}
	if len(args) == 3 {
		extra := args[2]
		if extra.Rank() == 1 { // bias
			if extra.Shape[0] != out[0].Shape[1] {
				return nil, fmt.Errorf("bias %s does not match output %s", extra, out[0])
			}
		} else if !extra.Equal(out[0]) {
			return nil, fmt.Errorf("epilogue input %s does not match output %s", extra, out[0])
		}
	}
	return out, nil
}

func inferReduce(args []Type, a Attrs) ([]Type, error) {
	x, axis := args[0], a.Int("axis", 0)
	if axis < 0 || axis >= x.Rank() {
		return nil, fmt.Errorf("axis %d out of range for %s", axis, x)
	}
	shape := append(append(Shape{}, x.Shape[:axis]...), x.Shape[axis+1:]...)
	return []Type{{DType: x.DType, Shape: shape}}, nil
}

func inferXent(_ bool) func([]Type, Attrs) ([]Type, error) {
	return func(args []Type, _ Attrs) ([]Type, error) {
		logits, labels := args[0], args[1]
		if logits.DType != F32 || logits.Rank() != 2 || labels.DType != I32 || labels.Rank() != 1 || labels.Shape[0] != logits.Shape[0] {
			return nil, fmt.Errorf("want logits f32[b,c] and labels i32[b], got %s and %s", logits, labels)
		}
		return []Type{Scalar(F32)}, nil
	}
}

func inferXentGrad(args []Type, a Attrs) ([]Type, error) {
	if _, err := inferXent(false)(args[:2], a); err != nil {
		return nil, err
	}
	if !args[2].Equal(Scalar(F32)) {
		return nil, fmt.Errorf("dloss must be a f32 scalar, got %s", args[2])
	}
	return []Type{args[0]}, nil
}

func inferSchedule(args []Type, _ Attrs) ([]Type, error) {
	if !args[0].Equal(Scalar(I32)) {
		return nil, fmt.Errorf("step must be an i32 scalar, got %s", args[0])
	}
	return []Type{Scalar(F32)}, nil
}

// inferOptimizer checks (w, g, state..., lr[, step]) and returns w and its
// state slots' types.
func inferOptimizer(results int) func([]Type, Attrs) ([]Type, error) {
	return func(args []Type, _ Attrs) ([]Type, error) {
		w := args[0]
		for i := 1; i <= results; i++ { // g and the state slots match w
			if !args[i].Equal(w) {
				return nil, fmt.Errorf("argument %d is %s, want %s like the weight", i, args[i], w)
			}
		}
		if !args[results+1].Equal(Scalar(F32)) {
			return nil, fmt.Errorf("lr must be a f32 scalar, got %s", args[results+1])
		}
		if len(args) > results+2 && !args[results+2].Equal(Scalar(I32)) {
			return nil, fmt.Errorf("step must be an i32 scalar, got %s", args[results+2])
		}
		out := make([]Type, results)
		for i := range out {
			out[i] = w
		}
		return out, nil
	}
}
