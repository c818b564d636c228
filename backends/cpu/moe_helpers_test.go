package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
)

// value is a kernel operand or result of either element type.
type value struct {
	t ir.Type
	f []float32
	i []int32
}

func fv(v []float32, dims ...int) value { return value{t: ir.Tensor(ir.F32, dims...), f: v} }
func iv(v []int32, dims ...int) value   { return value{t: ir.Tensor(ir.I32, dims...), i: v} }

// moeRef runs op in the float64 interpreter and returns its results.
func moeRef(t testing.TB, op string, attrs ir.Attrs, ins []value) []*interp.Tensor {
	t.Helper()
	f := &ir.Func{Name: "f"}
	b := ir.NewBuilder(f)
	args := map[string]*interp.Tensor{}
	var params []*ir.Value
	for i, a := range ins {
		p := b.Param(fmt.Sprintf("a%d", i), a.t, ir.RoleInput)
		params = append(params, p)
		tt := &interp.Tensor{Shape: a.t.Shape, I: a.i}
		for _, v := range a.f {
			tt.F = append(tt.F, float64(v))
		}
		args[p.Name] = tt
	}
	in, err := b.Emit(op, params, attrs)
	if err != nil {
		t.Fatal(err)
	}
	env, err := interp.Run(f, args)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*interp.Tensor, len(in.Results))
	for i, r := range in.Results {
		out[i] = env[r]
	}
	return out
}

// moeRun runs op as one kernel on be and returns copies of its results
// (outputs are poisoned first, so a kernel that skips elements is caught).
func moeRun(t testing.TB, be *Backend, op string, attrs ir.Attrs, ins []value) []value {
	t.Helper()
	var ts []ir.Type
	for _, a := range ins {
		ts = append(ts, a.t)
	}
	rts, err := ir.InferTypes(op, ts, attrs)
	if err != nil {
		t.Fatal(err)
	}
	pb := newPlanBuilder()
	var inIDs, outIDs []int
	for i, a := range ins {
		inIDs = append(inIDs, pb.buf("in"+itoa(i), ir.BufInput, a.t))
	}
	for i, rt := range rts {
		outIDs = append(outIDs, pb.buf("out"+itoa(i), ir.BufTemp, rt))
	}
	pb.kernel("p", op, inIDs, outIDs, attrs)
	x, err := be.prepare(pb.build())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i, a := range ins {
		if a.t.DType == ir.F32 {
			copy(x.F32(inIDs[i]), a.f)
		} else {
			copy(x.I32(inIDs[i]), a.i)
		}
	}
	for _, id := range outIDs {
		for j := range x.F32(id) {
			x.F32(id)[j] = float32(math.NaN())
		}
		for j := range x.I32(id) {
			x.I32(id)[j] = math.MinInt32
		}
	}
	if err := x.Run("p"); err != nil {
		t.Fatal(err)
	}
	out := make([]value, len(outIDs))
	for i, id := range outIDs {
		out[i] = value{t: rts[i], f: append([]float32(nil), x.F32(id)...), i: append([]int32(nil), x.I32(id)...)}
	}
	return out
}

// moeCheck compares op's kernel on every test pool with the interpreter:
// i32 results exactly, f32 results within atol·max|want| + rtol·|want|.
func moeCheck(t *testing.T, op string, attrs ir.Attrs, ins []value, atol, rtol float64) []value {
	t.Helper()
	want := moeRef(t, op, attrs, ins)
	var got []value
	for _, be := range testPools {
		got = moeRun(t, be, op, attrs, ins)
		for i, g := range got {
			what := fmt.Sprintf("%s %v result %d (%d workers)", op, attrs, i, be.pool.Workers())
			if g.t.DType == ir.I32 {
				for j := range g.i {
					if g.i[j] != want[i].I[j] {
						t.Fatalf("%s[%d] = %d, want %d", what, j, g.i[j], want[i].I[j])
					}
				}
				continue
			}
			scale := 0.0
			for _, v := range want[i].F {
				scale = max(scale, math.Abs(v))
			}
			closeTo(t, what, g.f, want[i].F, atol*scale, rtol)
		}
	}
	return got
}

// asValues turns interpreter results back into kernel operands.
func asValues(ts []*interp.Tensor, types []ir.Type) []value {
	out := make([]value, len(ts))
	for i, tt := range ts {
		out[i] = value{t: types[i], i: tt.I}
		for _, v := range tt.F {
			out[i].f = append(out[i].f, float32(v))
		}
	}
	return out
}

func moeTypes(t testing.TB, op string, attrs ir.Attrs, ins []value) []ir.Type {
	t.Helper()
	var ts []ir.Type
	for _, a := range ins {
		ts = append(ts, a.t)
	}
	rts, err := ir.InferTypes(op, ts, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return rts
}

// spread draws n logits far enough apart that float32 and float64 agree
// on every top-k.
func spread(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(2 * r.NormFloat64())
	}
	return v
}

// prepareOne prepares op as a one-kernel plan on a pool of workers, fills
// its inputs and returns the executable and a function that runs it.
func prepareOne(t testing.TB, workers int, op string, attrs ir.Attrs, ins []value) (*Executable, func()) {
	t.Helper()
	rts := moeTypes(t, op, attrs, ins)
	pb := newPlanBuilder()
	var inIDs, outIDs []int
	for i, a := range ins {
		inIDs = append(inIDs, pb.buf("in"+itoa(i), ir.BufInput, a.t))
	}
	for i, rt := range rts {
		outIDs = append(outIDs, pb.buf("out"+itoa(i), ir.BufTemp, rt))
	}
	pb.kernel("p", op, inIDs, outIDs, attrs)
	be := &Backend{pool: pool.New(workers), owned: true}
	x, err := be.prepare(pb.build())
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range ins {
		if a.t.DType == ir.F32 {
			copy(x.F32(inIDs[i]), a.f)
		} else {
			copy(x.I32(inIDs[i]), a.i)
		}
	}
	return x, func() {
		if err := x.Run("p"); err != nil {
			t.Fatal(err)
		}
	}
}
