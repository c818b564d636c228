package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// benchOp prepares one kernel on random inputs and times Run. bytes is the
// traffic reported per run (for MB/s).
func benchOp(b *testing.B, op string, attrs ir.Attrs, ins []arg, outs ...ir.Type) {
	pb := newPlanBuilder()
	var inIDs, outIDs []int
	for i, a := range ins {
		inIDs = append(inIDs, pb.buf("in"+itoa(i), ir.BufInput, a.t))
	}
	var bytes int64
	for i, o := range outs {
		outIDs = append(outIDs, pb.buf("out"+itoa(i), ir.BufTemp, o))
		bytes += o.Bytes()
	}
	for _, a := range ins {
		bytes += a.t.Bytes()
	}
	pb.kernel("p", op, inIDs, outIDs, attrs)
	x, err := New(0).prepare(pb.build())
	if err != nil {
		b.Fatal(err)
	}
	for i, a := range ins {
		if a.t.DType == ir.F32 {
			copy(x.F32(inIDs[i]), a.f)
		} else {
			copy(x.I32(inIDs[i]), a.i)
		}
	}
	b.SetBytes(bytes)
	b.ReportAllocs()
	for b.Loop() {
		if err := x.Run("p"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkElementwise(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{4 << 10, 1 << 20} {
		x, y := normals(r, n, 1), uniforms(r, n, 0.5, 2)
		t := ir.Tensor(ir.F32, n)
		for _, op := range []string{"relu", "exp", "gelu", "tanh", "sigmoid", "scale"} {
			var attrs ir.Attrs
			if op == "scale" {
				attrs = ir.Attrs{"factor": 0.5}
			}
			b.Run(fmt.Sprintf("%s/%d", op, n), func(b *testing.B) { benchOp(b, op, attrs, []arg{f32Arg(x, n)}, t) })
		}
		for _, op := range []string{"add", "mul", "relu_grad", "gelu_grad"} {
			b.Run(fmt.Sprintf("%s/%d", op, n), func(b *testing.B) { benchOp(b, op, nil, []arg{f32Arg(x, n), f32Arg(y, n)}, t) })
		}
		rows := n / 512
		b.Run(fmt.Sprintf("bias_add/%dx512", rows), func(b *testing.B) {
			benchOp(b, "bias_add", nil, []arg{f32Arg(x, rows, 512), f32Arg(y[:512], 512)}, ir.Tensor(ir.F32, rows, 512))
		})
		b.Run(fmt.Sprintf("reduce_sum_axis0/%dx512", rows), func(b *testing.B) {
			benchOp(b, "reduce_sum", ir.Attrs{"axis": 0}, []arg{f32Arg(x, rows, 512)}, ir.Tensor(ir.F32, 512))
		})
	}
}

func BenchmarkLoss(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][2]int{{256, 10}, {256, 1000}, {4096, 1000}} {
		rows, cols := s[0], s[1]
		l, y := normals(r, rows*cols, 3), labels(r, rows, cols)
		args := []arg{f32Arg(l, rows, cols), i32Arg(y, rows), f32Arg([]float32{1})}
		attrs := ir.Attrs{"label_smoothing": 0.1}
		name := fmt.Sprintf("%dx%d", rows, cols)
		b.Run("softmax_xent/"+name, func(b *testing.B) { benchOp(b, "softmax_xent", attrs, args[:2], ir.Scalar(ir.F32)) })
		b.Run("softmax_xent_fused/"+name, func(b *testing.B) {
			benchOp(b, "softmax_xent_fused", attrs, args, ir.Scalar(ir.F32), ir.Tensor(ir.F32, rows, cols))
		})
		b.Run("count_correct/"+name, func(b *testing.B) { benchOp(b, "count_correct", nil, args[:2], ir.Scalar(ir.F32)) })
	}
}

func BenchmarkOptimizer(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 1 << 20
	t := ir.Tensor(ir.F32, n)
	w, g, m, v := normals(r, n, 1), normals(r, n, 1), normals(r, n, 0.1), uniforms(r, n, 1e-4, 1e-2)
	lr, step := f32Arg([]float32{0.01}), i32Arg([]int32{10})
	b.Run("sgd", func(b *testing.B) {
		benchOp(b, "sgd", ir.Attrs{"momentum": 0.9}, []arg{f32Arg(w, n), f32Arg(g, n), f32Arg(m, n), lr}, t, t)
	})
	b.Run("adamw", func(b *testing.B) {
		benchOp(b, "adamw", nil, []arg{f32Arg(w, n), f32Arg(g, n), f32Arg(m, n), f32Arg(v, n), lr, step}, t, t, t)
	})
}

// BenchmarkMLPStep is one train step of a Fashion-MNIST-sized MLP
// (batch 256, 784-256-10).
func BenchmarkMLPStep(b *testing.B) {
	m := newMLP(256, 784, 256, 10)
	x, err := New(0).prepare(m.plan)
	if err != nil {
		b.Fatal(err)
	}
	m.feed(x, rand.New(rand.NewPCG(7, 8)), 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := x.Run("train"); err != nil {
			b.Fatal(err)
		}
	}
}
