package lowering

import "github.com/expc-dev/expc/ir"

// The cost model: FLOPs per kernel, from its argument and result types.
// These are estimates for `expc explain` and roofline reports, not
// measurements: elementwise ops count 1 to 8 FLOPs per element (a
// transcendental counts several), a GEMM 2·m·k·n, softmax cross-entropy
// about 5 per logit, optimizer updates about 10 per weight. Bytes are not
// in the table: a kernel's bytes are always its inputs' plus its outputs'.
//
// Every op in the op table needs a row (a test checks).

// costFn gives a kernel's FLOPs.
type costFn func(args, results []ir.Type, attrs ir.Attrs) int64

// elementFLOPs is the per-element cost of the elementwise ops; the fused
// GEMM epilogues use it for their activation.
var elementFLOPs = map[string]int64{
	"neg": 1, "square": 1, "scale": 1, "add": 1, "sub": 1, "mul": 1, "div": 1, "bias_add": 1,
	"sqrt": 2, "exp": 4, "log": 4,
	"relu": 1, "sigmoid": 4, "tanh": 6, "gelu": 8,
	"relu_grad": 1, "sigmoid_grad": 3, "tanh_grad": 3, "gelu_grad": 8,
	"none": 0,
}

var costTable = map[string]costFn{
	"fill":               perResultElem(0),
	"reduce_sum":         perArgElem(1),
	"matmul":             gemmCost,
	"matmul_bias_act":    gemmCost,
	"matmul_act_grad":    gemmCost,
	"softmax_xent":       perArgElem(5),
	"softmax_xent_grad":  perArgElem(5),
	"softmax_xent_fused": perArgElem(7), // one pass over the logits for both
	"count_correct":      perArgElem(1),
	"lr_schedule":        fixed(10),
	"sgd":                perArgElem(6),  // decay, momentum, step
	"adamw":              perArgElem(14), // two moments, bias correction, rsqrt, step
}

func init() {
	for op, n := range elementFLOPs {
		if op != "none" {
			costTable[op] = perResultElem(n)
		}
	}
}

// perResultElem charges n FLOPs per element of the first result.
func perResultElem(n int64) costFn {
	return func(_, results []ir.Type, _ ir.Attrs) int64 { return n * results[0].Shape.Elems() }
}

// perArgElem charges n FLOPs per element of the first argument.
func perArgElem(n int64) costFn {
	return func(args, _ []ir.Type, _ ir.Attrs) int64 { return n * args[0].Shape.Elems() }
}

func fixed(n int64) costFn { return func(_, _ []ir.Type, _ ir.Attrs) int64 { return n } }

// gemmCost is 2·m·k·n plus the epilogue: a bias add and the activation (or
// its gradient) per output element.
func gemmCost(args, _ []ir.Type, attrs ir.Attrs) int64 {
	m, k, n, err := ir.MatmulDims(args[0], args[1], attrs.Bool("transpose_a", false), attrs.Bool("transpose_b", false))
	if err != nil {
		return 0
	}
	flops := 2 * int64(m) * int64(k) * int64(n)
	act := attrs.Str("act", "none")
	switch {
	case len(args) == 3 && args[2].Rank() == 1: // matmul_bias_act with a bias
		flops += int64(m) * int64(n) * (1 + elementFLOPs[act])
	case len(args) == 3: // matmul_act_grad: x is the activation's input
		flops += int64(m) * int64(n) * elementFLOPs[act+"_grad"]
	default:
		flops += int64(m) * int64(n) * elementFLOPs[act]
	}
	return flops
}

// kernelCost returns a kernel's FLOPs and bytes read and written.
func kernelCost(op string, args, results []ir.Type, attrs ir.Attrs) (flops, bytes int64, ok bool) {
	fn, ok := costTable[op]
	if !ok {
		return 0, 0, false
	}
	for _, t := range args {
		bytes += t.Bytes()
	}
	for _, t := range results {
		bytes += t.Bytes()
	}
	return fn(args, results, attrs), bytes, true
}
