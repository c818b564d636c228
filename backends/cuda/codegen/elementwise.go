package codegen

import (
	"fmt"
	"strings"
)

// Element-wise kernels: grid-stride loops over the output. Each thread reads
// element i of every input before writing element i of the output, so every
// one of them may run in place (the CPU backend allows it for all).

// unaryOps maps an op to its float expression of x.
var unaryOps = map[string]string{
	"neg":     "-x",
	"exp":     "ex_expf(x)",
	"log":     "ex_logf(x)",
	"sqrt":    "ex_fsqrt(x)",
	"square":  "x * x",
	"relu":    "ex_act<1>(x)",
	"gelu":    "ex_act<2>(x)",
	"tanh":    "ex_act<3>(x)",
	"sigmoid": "ex_act<4>(x)",
}

// binaryOps maps an op to its float expression of a and b; the activation
// gradients take (dy, x) as (a, b).
var binaryOps = map[string]string{
	"add":          "a + b",
	"sub":          "a - b",
	"mul":          "a * b",
	"div":          "a / b",
	"relu_grad":    "ex_mul_act_grad<1>(a, b)",
	"gelu_grad":    "ex_mul_act_grad<2>(a, b)",
	"tanh_grad":    "ex_mul_act_grad<3>(a, b)",
	"sigmoid_grad": "ex_mul_act_grad<4>(a, b)",
}

func init() {
	for op, expr := range unaryOps {
		register(op, func(g *gen) error {
			g.use("math")
			name := "ex_unary_" + op
			if err := g.entry(name, streamEntry(name, "const float* X, float* Y", "float x = X[i]; Y[i] = "+expr+";")); err != nil {
				return err
			}
			return g.stream(name, g.in(0), g.out(0))
		})
		chooseFor(firstOutElems, op)
	}
	for op, expr := range binaryOps {
		register(op, func(g *gen) error {
			g.use("math")
			name := "ex_binary_" + op
			if err := g.entry(name, streamEntry(name, "const float* A, const float* B, float* Y", "float a = A[i], b = B[i]; Y[i] = "+expr+";")); err != nil {
				return err
			}
			return g.stream(name, g.in(0), g.in(1), g.out(0))
		})
		chooseFor(firstOutElems, op)
	}
	register("scale", func(g *gen) error {
		if err := g.entry("ex_scale", streamEntry("ex_scale", "const float* X, float* Y, float f", "Y[i] = f * X[i];")); err != nil {
			return err
		}
		return g.stream("ex_scale", g.in(0), g.out(0), f32Arg(float32(g.attrs().Float("factor", 1))))
	})
	register("fill", func(g *gen) error {
		if err := g.entry("ex_fill", streamEntry("ex_fill", "float* Y, float v", "Y[i] = v;")); err != nil {
			return err
		}
		return g.stream("ex_fill", g.out(0), f32Arg(float32(g.attrs().Float("value", 0))))
	})
	register("bias_add", func(g *gen) error {
		t := g.inType(0)
		n := int64(t.Shape[t.Rank()-1])
		if err := g.entry("ex_bias_add", streamEntry("ex_bias_add", "const float* X, const float* Bias, float* Y, i64 cols",
			"Y[i] = X[i] + Bias[i % cols];")); err != nil {
			return err
		}
		return g.stream("ex_bias_add", g.in(0), g.in(1), g.out(0), i64Arg(max(n, 1)))
	})
	chooseFor(firstOutElems, "scale", "fill", "bias_add")
}

// streamEntry is a grid-stride entry point over i in [0, n): params come
// first, then the element count.
func streamEntry(name, params, body string) string {
	return fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(%s, i64 n) {
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    %s
  }
}
`, name, params, strings.TrimSpace(body))
}

// stream launches a grid-stride entry over the first output's elements,
// with the element count appended to args.
func (g *gen) stream(entry string, args ...Arg) error {
	n := g.outType(0).Shape.Elems()
	la := g.launchAttrs()
	block, grid := la.Int("block", blockThreads), la.Int("grid", 0)
	if grid <= 0 {
		grid = streamChoice(n).Int("grid", 1)
	}
	if block != blockThreads { // the entry points are compiled for 256-thread blocks
		return fmt.Errorf("launch block %d: the cuda backend's stream kernels run %d threads a block", block, blockThreads)
	}
	g.emit(entry, dim(grid), dim(block), append(args, i64Arg(n))...)
	return nil
}
