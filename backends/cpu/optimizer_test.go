package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/expc-dev/expc/ir"
)

func TestLRSchedule(t *testing.T) {
	ref := func(step int, kind string, lr, minLR float64, warmup, total int) float64 {
		if warmup > 0 && step < warmup {
			return lr * float64(step+1) / float64(warmup)
		}
		if kind == "constant" {
			return lr
		}
		p := float64(step-warmup) / math.Max(1, float64(total-warmup))
		p = math.Min(math.Max(p, 0), 1)
		return minLR + (lr-minLR)*0.5*(1+math.Cos(math.Pi*p))
	}
	for _, kind := range []string{"constant", "cosine"} {
		for _, sched := range [][2]int{{0, 0}, {0, 1}, {7, 7}, {10, 257}, {33, 1000}} {
			warmup, total := sched[0], sched[1]
			attrs := ir.Attrs{"kind": kind, "lr": 0.3, "min_lr": 0.01, "warmup": warmup, "total": total}
			for _, step := range []int{0, 1, 6, 7, 8, 100, 256, 257, 5000} {
				got := runOp(t, testPools[0], "lr_schedule", attrs, []arg{i32Arg([]int32{int32(step)})}, ir.Scalar(ir.F32))[0]
				closeTo(t, fmt.Sprintf("%s warmup=%d total=%d step=%d", kind, warmup, total, step),
					got, []float64{ref(step, kind, 0.3, 0.01, warmup, total)}, 0, 6e-8)
			}
		}
	}
}

// optCase is one optimizer configuration and its float64 reference.
type optCase struct {
	op    string
	attrs ir.Attrs
	slots int // state slots after w and g
	// ref updates w and the slots (float64) for one element.
	ref func(w, g float64, s []float64, lr float64, step int) float64
}

var optCases = []optCase{
	{"sgd", ir.Attrs{"momentum": 0.9, "weight_decay": 1e-2}, 1, sgdRef(0.9, 1e-2, false)},
	{"sgd", ir.Attrs{"momentum": 0.8, "weight_decay": 1e-3, "nesterov": true}, 1, sgdRef(0.8, 1e-3, true)},
	{"sgd", nil, 1, sgdRef(0, 0, false)},
	{"adamw", ir.Attrs{"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.05}, 2, adamRef(0.9, 0.999, 1e-8, 0.05)},
	{"adamw", ir.Attrs{"beta1": 0.5, "beta2": 0.9, "eps": 1e-3}, 2, adamRef(0.5, 0.9, 1e-3, 0)},
}

func sgdRef(m, wd float64, nesterov bool) func(w, g float64, s []float64, lr float64, _ int) float64 {
	return func(w, g float64, s []float64, lr float64, _ int) float64 {
		g += wd * w
		s[0] = m*s[0] + g
		u := s[0]
		if nesterov {
			u = g + m*s[0]
		}
		return w - lr*u
	}
}

func adamRef(b1, b2, eps, wd float64) func(w, g float64, s []float64, lr float64, step int) float64 {
	return func(w, g float64, s []float64, lr float64, step int) float64 {
		t := float64(step + 1)
		s[0] = b1*s[0] + (1-b1)*g
		s[1] = b2*s[1] + (1-b2)*g*g
		mh, vh := s[0]/(1-math.Pow(b1, t)), s[1]/(1-math.Pow(b2, t))
		return w - lr*(mh/(math.Sqrt(vh)+eps)+wd*w)
	}
}

// optimizerPlan builds one update kernel. In place, the outputs alias w and
// the state slots (as the compiler emits it); otherwise they are fresh.
func optimizerPlan(c optCase, n int, inPlace bool) (*planBuilder, []int, []int) {
	pb := newPlanBuilder()
	vt := ir.Tensor(ir.F32, n)
	ins := []int{pb.buf("w", ir.BufParam, vt), pb.buf("g", ir.BufTemp, vt)}
	for i := range c.slots {
		ins = append(ins, pb.buf("s"+itoa(i), ir.BufState, vt))
	}
	ins = append(ins, pb.buf("lr", ir.BufTemp, ir.Scalar(ir.F32)))
	if c.op == "adamw" {
		ins = append(ins, pb.buf("step", ir.BufInput, ir.Scalar(ir.I32)))
	}
	var outs []int
	for i := 0; i <= c.slots; i++ {
		src := ins[0]
		if i > 0 {
			src = ins[1+i]
		}
		if inPlace {
			outs = append(outs, pb.alias("out"+itoa(i), src))
		} else {
			outs = append(outs, pb.buf("out"+itoa(i), ir.BufTemp, vt))
		}
	}
	pb.kernel("p", c.op, ins, outs, c.attrs)
	return pb, ins, outs
}

// TestOptimizers runs one step (at step 4, so the bias corrections matter)
// of every optimizer against the float64 reference and checks that the
// in-place update equals the out-of-place one bit for bit.
func TestOptimizers(t *testing.T) {
	r := newRand(t)
	for _, be := range testPools {
		for _, c := range optCases {
			for _, n := range sizes {
				w, g := normals(r, n, 1), normals(r, n, 1)
				slots := [][]float32{normals(r, n, 0.1), uniforms(r, n, 1e-4, 1e-2)} // momentum / second moment
				const lr = 0.05
				var got [2][][]float32 // [in place?] -> w', slots'
				for ip, inPlace := range []bool{false, true} {
					pb, ins, outs := optimizerPlan(c, n, inPlace)
					x, err := be.prepare(pb.build())
					if err != nil {
						t.Fatal(err)
					}
					copy(x.F32(ins[0]), w)
					copy(x.F32(ins[1]), g)
					for i := range c.slots {
						copy(x.F32(ins[2+i]), slots[i])
					}
					x.F32(ins[2+c.slots])[0] = lr
					if c.op == "adamw" {
						x.I32(ins[3+c.slots])[0] = 4
					}
					if err := x.Run("p"); err != nil {
						t.Fatal(err)
					}
					for _, o := range outs {
						got[ip] = append(got[ip], append([]float32(nil), x.F32(o)...))
					}
				}
				what := fmt.Sprintf("%s %v n=%d", c.op, c.attrs, n)
				for o := range got[0] {
					for i := range got[0][o] {
						if math.Float32bits(got[0][o][i]) != math.Float32bits(got[1][o][i]) {
							t.Fatalf("%s output %d [%d]: in place %v, out of place %v", what, o, i, got[1][o][i], got[0][o][i])
						}
					}
				}
				wantW := make([]float64, n)
				wantS := make([][]float64, c.slots)
				for s := range wantS {
					wantS[s] = make([]float64, n)
				}
				for i := range n {
					st := []float64{float64(slots[0][i]), float64(slots[1][i])}[:c.slots]
					wantW[i] = c.ref(float64(w[i]), float64(g[i]), st, float64(float32(lr)), 4)
					for s := range st {
						wantS[s][i] = st[s]
					}
				}
				// Float32 element arithmetic: a handful of roundings of terms
				// of order |g| ≤ 5, which may cancel (m·v + g): an absolute
				// 2e-7 (a few ulp of such terms) plus rtol 1e-6.
				closeTo(t, what+" w'", got[0][0], wantW, 1e-6, 1e-6)
				for s := range wantS {
					closeTo(t, what+" state'", got[0][1+s], wantS[s], 2e-7, 1e-6)
				}
			}
		}
	}
}
