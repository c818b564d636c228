package cpu

import (
	"math"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Element-wise kernels. Each op is a loop over one chunk of its operands; the
// kernel structs below cut the tensor into chunks and hand them to the pool.
// The activations call gemm's scalar helpers so that a fused GEMM epilogue
// and the unfused op sequence compute the same float32 values.

type unaryFn func(y, x []float32)
type binaryFn func(y, a, b []float32)

// Every unary and binary op is safe in place: y[i] is written after x[i]
// (and a[i], b[i]) are read.
func init() {
	unaries := map[string]struct {
		fn    unaryFn
		grain int
	}{
		"neg":     {negLoop, grainCheap},
		"exp":     {expLoop, grainExpensive},
		"log":     {logLoop, grainExpensive},
		"sqrt":    {sqrtLoop, grainCheap},
		"square":  {squareLoop, grainCheap},
		"relu":    {reluLoop, grainCheap},
		"gelu":    {actLoop(gemm.GELU), grainExpensive},
		"tanh":    {actLoop(gemm.Tanh), grainExpensive},
		"sigmoid": {actLoop(gemm.Sigmoid), grainExpensive},
	}
	for op, u := range unaries {
		register(op, true, func(b *binder) (kernel, error) { return newUnary(b, u.fn, u.grain), nil })
	}
	register("scale", true, func(b *binder) (kernel, error) {
		f := b.f32Attr("factor", 1)
		return newUnary(b, func(y, x []float32) {
			x = x[:len(y)]
			for i, v := range x {
				y[i] = f * v
			}
		}, grainCheap), nil
	})

	binaries := map[string]struct {
		fn    binaryFn
		grain int
	}{
		"add":          {addLoop, grainCheap},
		"sub":          {subLoop, grainCheap},
		"mul":          {mulLoop, grainCheap},
		"div":          {divLoop, grainCheap},
		"relu_grad":    {reluGradLoop, grainCheap},
		"gelu_grad":    {actGradLoop(gemm.GELU), grainExpensive},
		"tanh_grad":    {actGradLoop(gemm.Tanh), grainExpensive},
		"sigmoid_grad": {actGradLoop(gemm.Sigmoid), grainExpensive},
	}
	for op, f := range binaries {
		register(op, true, func(b *binder) (kernel, error) { return newBinary(b, f.fn, f.grain), nil })
	}
	register("bias_add", true, newBiasAdd)
}

// unary applies fn chunk by chunk.
type unaryOp struct {
	pool *pool.Pool
	fn   unaryFn
	y, x []float32
	c    chunks
}

func newUnary(b *binder, fn unaryFn, grain int) *unaryOp {
	y, x := b.out(0), b.out(0) // fill has no input: give fn y twice
	if len(b.k.Ins) > 0 {
		x = b.in(0)
	}
	return &unaryOp{pool: b.pool, fn: fn, y: y, x: x, c: split(len(y), grain, b.workers(), lineFloats)}
}

func (k *unaryOp) run() error { k.pool.RunTask(k.c.tasks, k); return nil }

// Run is the pool.Task method: one chunk.
func (k *unaryOp) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	k.fn(k.y[lo:hi], k.x[lo:hi])
}

type binaryOp struct {
	pool    *pool.Pool
	fn      binaryFn
	y, a, b []float32
	c       chunks
}

func newBinary(b *binder, fn binaryFn, grain int) *binaryOp {
	y := b.out(0)
	return &binaryOp{pool: b.pool, fn: fn, y: y, a: b.in(0), b: b.in(1), c: split(len(y), grain, b.workers(), lineFloats)}
}

func (k *binaryOp) run() error { k.pool.RunTask(k.c.tasks, k); return nil }

func (k *binaryOp) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	k.fn(k.y[lo:hi], k.a[lo:hi], k.b[lo:hi])
}

// biasAdd adds b[n] to every row of x[rows, n]; chunks are whole rows.
type biasAdd struct {
	pool    *pool.Pool
	y, x, b []float32
	n       int
	c       chunks // over rows
}

func newBiasAdd(b *binder) (kernel, error) {
	x := b.inType(0)
	n := x.Shape[x.Rank()-1]
	rows := 0
	if n > 0 {
		rows = int(x.Shape.Elems()) / n
	}
	return &biasAdd{pool: b.pool, y: b.out(0), x: b.in(0), b: b.in(1), n: n,
		c: split(rows, (grainCheap+n-1)/max(n, 1), b.workers(), 1)}, nil
}

func (k *biasAdd) run() error { k.pool.RunTask(k.c.tasks, k); return nil }

func (k *biasAdd) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	n := k.n
	for r := lo; r < hi; r++ {
		y, x := k.y[r*n:(r+1)*n], k.x[r*n:(r+1)*n]
		bias := k.b[:n]
		for j, v := range x {
			y[j] = v + bias[j]
		}
	}
}

// The loops. Re-slicing the inputs to len(y) lets the compiler drop the
// bounds checks.

func negLoop(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = -v
	}
}

func expLoop(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = float32(math.Exp(float64(v)))
	}
}

func logLoop(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = float32(math.Log(float64(v)))
	}
}

// sqrtLoop: the float64 square root of a float32, rounded back, is the
// correctly rounded float32 square root (and compiles to one SQRTSS).
func sqrtLoop(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = float32(math.Sqrt(float64(v)))
	}
}

func squareLoop(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = v * v
	}
}

// reluLoop uses max, as gemm.ApplyAct does: max propagates NaN.
func reluLoop(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

func actLoop(act gemm.Act) unaryFn {
	return func(y, x []float32) {
		x = x[:len(y)]
		for i, v := range x {
			y[i] = gemm.ActForward(act, v)
		}
	}
}

func addLoop(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

func subLoop(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] - b[i]
	}
}

func mulLoop(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] * b[i]
	}
}

func divLoop(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] / b[i]
	}
}

// reluGradLoop matches gemm.MulActGrad: the gradient is dy where x > 0 and 0
// elsewhere (including x = 0 and x = NaN).
func reluGradLoop(y, dy, x []float32) {
	dy, x = dy[:len(y)], x[:len(y)]
	for i := range y {
		if x[i] > 0 {
			y[i] = dy[i]
		} else {
			y[i] = 0
		}
	}
}

func actGradLoop(act gemm.Act) binaryFn {
	return func(y, dy, x []float32) {
		dy, x = dy[:len(y)], x[:len(y)]
		for i := range y {
			y[i] = dy[i] * gemm.ActGrad(act, x[i])
		}
	}
}
