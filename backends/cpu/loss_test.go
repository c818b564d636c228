package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// refXent is the float64 reference of softmax_xent and its gradient.
func refXent(l []float32, y []int32, b, c int, s, z, dloss float64) (loss float64, grad []float64) {
	grad = make([]float64, b*c)
	valid := 0
	for _, lab := range y {
		if lab >= 0 {
			valid++
		}
	}
	if valid == 0 {
		return 0, grad
	}
	for r := range b {
		if y[r] < 0 {
			continue
		}
		row := l[r*c : (r+1)*c]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, float64(v))
		}
		var se, sum float64
		for _, v := range row {
			se += math.Exp(float64(v) - mx)
			sum += float64(v)
		}
		lse := mx + math.Log(se)
		loss += lse - ((1-s)*float64(row[y[r]]) + s/float64(c)*sum) + z*lse*lse
		for j, v := range row {
			p := math.Exp(float64(v) - lse)
			target := s / float64(c)
			if j == int(y[r]) {
				target += 1 - s
			}
			grad[r*c+j] = dloss / float64(valid) * (p - target + 2*z*lse*p)
		}
	}
	return loss / float64(valid), grad
}

// labels draws labels in [0, c), with about one row in five padding (−1).
func labels(r *rand.Rand, b, c int) []int32 {
	y := make([]int32, b)
	for i := range y {
		y[i] = int32(r.IntN(c))
		if r.IntN(5) == 0 {
			y[i] = -1
		}
	}
	return y
}

func TestSoftmaxXent(t *testing.T) {
	r := newRand(t)
	scalar := ir.Scalar(ir.F32)
	for _, be := range testPools {
		for _, b := range []int{1, 7, 33, 257, 3000} {
			for _, c := range []int{1, 7, 33, 257} {
				for _, hp := range [][2]float64{{0, 0}, {0.1, 1e-3}} {
					attrs := ir.Attrs{"label_smoothing": hp[0], "z_loss": hp[1]}
					l, y := normals(r, b*c, 3), labels(r, b, c)
					dloss := float32(0.5 + r.Float64())
					args := []arg{f32Arg(l, b, c), i32Arg(y, b), f32Arg([]float32{dloss})}
					wantLoss, wantGrad := refXent(l, y, b, c, hp[0], hp[1], float64(dloss))
					what := fmt.Sprintf("b=%d c=%d s=%g z=%g", b, c, hp[0], hp[1])

					loss := runOp(t, be, "softmax_xent", attrs, args[:2], scalar)[0]
					grad := runOp(t, be, "softmax_xent_grad", attrs, args, ir.Tensor(ir.F32, b, c))[0]
					fused := runOp(t, be, "softmax_xent_fused", attrs, args, scalar, ir.Tensor(ir.F32, b, c))
					// Loss: float64 throughout, one rounding: rtol 1e-6.
					// Gradient: float64 per row, exponentials stored as
					// float32 once: atol 1e-7·dloss/valid scale, rtol 1e-6.
					closeTo(t, "softmax_xent "+what, loss, []float64{wantLoss}, 1e-7, 1e-6)
					closeTo(t, "softmax_xent_fused loss "+what, fused[0], []float64{wantLoss}, 1e-7, 1e-6)
					closeTo(t, "softmax_xent_grad "+what, grad, wantGrad, 1e-9, 1e-6)
					closeTo(t, "softmax_xent_fused grad "+what, fused[1], wantGrad, 1e-9, 1e-6)
				}
			}
		}
	}
}

func TestSoftmaxXentAllPadding(t *testing.T) {
	r := newRand(t)
	l := normals(r, 7*5, 1)
	y := []int32{-1, -1, -1, -1, -1, -1, -1}
	out := runOp(t, testPools[0], "softmax_xent_fused", nil, []arg{f32Arg(l, 7, 5), i32Arg(y, 7), f32Arg([]float32{1})},
		ir.Scalar(ir.F32), ir.Tensor(ir.F32, 7, 5))
	if out[0][0] != 0 {
		t.Errorf("loss with no valid rows = %v, want 0", out[0][0])
	}
	for i, g := range out[1] {
		if g != 0 {
			t.Fatalf("grad[%d] = %v with no valid rows, want 0", i, g)
		}
	}
}

func TestSoftmaxXentBadLabel(t *testing.T) {
	pb := newPlanBuilder()
	l := pb.buf("l", ir.BufInput, ir.Tensor(ir.F32, 2, 3))
	y := pb.buf("y", ir.BufInput, ir.Tensor(ir.I32, 2))
	loss := pb.buf("loss", ir.BufTemp, ir.Scalar(ir.F32))
	pb.kernel("p", "softmax_xent", []int{l, y}, []int{loss}, nil)
	x, err := testPools[0].prepare(pb.build())
	if err != nil {
		t.Fatal(err)
	}
	x.I32(y)[1] = 3
	if err := x.Run("p"); err == nil {
		t.Fatal("label 3 of 3 classes was accepted")
	} else {
		t.Log(err)
	}
}

func TestCountCorrect(t *testing.T) {
	r := newRand(t)
	for _, be := range testPools {
		for _, b := range []int{1, 7, 33, 257, 5000} {
			for _, c := range []int{1, 7, 33, 257} {
				l, y := normals(r, b*c, 1), labels(r, b, c)
				// Make ties: copy the first logit onto a later column in
				// some rows; the first maximum must win.
				for i := 0; i < b; i += 3 {
					l[i*c+c-1] = l[i*c]
				}
				want := 0
				for i := range b {
					arg := 0
					for j := 1; j < c; j++ {
						if l[i*c+j] > l[i*c+arg] {
							arg = j
						}
					}
					if y[i] >= 0 && arg == int(y[i]) {
						want++
					}
				}
				got := runOp(t, be, "count_correct", nil, []arg{f32Arg(l, b, c), i32Arg(y, b)}, ir.Scalar(ir.F32))[0][0]
				if got != float32(want) {
					t.Errorf("count_correct b=%d c=%d = %v, want %d", b, c, got, want)
				}
			}
		}
	}
}
