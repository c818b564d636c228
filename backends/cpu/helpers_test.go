package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// planBuilder lays buffers out by hand, 64-byte aligned, one after another.
type planBuilder struct {
	plan ir.Plan
	off  int64
}

func newPlanBuilder() *planBuilder {
	return &planBuilder{plan: ir.Plan{Format: ir.PlanFormat, Name: "test", Target: "cpu"}}
}

func (p *planBuilder) buf(name string, kind ir.BufferKind, t ir.Type) int {
	id := len(p.plan.Buffers)
	p.plan.Buffers = append(p.plan.Buffers, ir.Buffer{ID: id, Name: name, Type: t, Kind: kind, Offset: p.off, Bytes: t.Bytes()})
	p.off += (t.Bytes() + 63) / 64 * 64
	return id
}

// alias adds a buffer that shares another's storage (an in-place output).
func (p *planBuilder) alias(name string, of int) int {
	b := p.plan.Buffers[of]
	b.ID, b.Name = len(p.plan.Buffers), name
	p.plan.Buffers = append(p.plan.Buffers, b)
	return b.ID
}

func (p *planBuilder) kernel(prog, op string, ins, outs []int, attrs ir.Attrs) {
	var pr *ir.Program
	if pr = p.plan.Program(prog); pr == nil {
		p.plan.Programs = append(p.plan.Programs, ir.Program{Name: prog})
		pr = &p.plan.Programs[len(p.plan.Programs)-1]
	}
	pr.Kernels = append(pr.Kernels, ir.Kernel{Name: "k" + itoa(len(pr.Kernels)), Op: op, Ins: ins, Outs: outs, Attrs: attrs})
}

func (p *planBuilder) build() *ir.Plan {
	p.plan.Memory.ArenaBytes = p.off
	return &p.plan
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// arg is one kernel input: a type and its values.
type arg struct {
	t ir.Type
	f []float32
	i []int32
}

func f32Arg(v []float32, dims ...int) arg { return arg{t: ir.Tensor(ir.F32, dims...), f: v} }
func i32Arg(v []int32, dims ...int) arg   { return arg{t: ir.Tensor(ir.I32, dims...), i: v} }

// testPools are the worker counts every kernel test runs with: one worker
// (the inline path) and four (the parallel path, even on a small machine).
var testPools = []*Backend{{pool: pool.New(1)}, {pool: pool.New(4)}}

// runOp runs one kernel on fresh buffers and returns copies of its outputs.
func runOp(t testing.TB, be *Backend, op string, attrs ir.Attrs, ins []arg, outs ...ir.Type) [][]float32 {
	t.Helper()
	pb := newPlanBuilder()
	var inIDs, outIDs []int
	for i, a := range ins {
		inIDs = append(inIDs, pb.buf("in"+itoa(i), ir.BufInput, a.t))
	}
	for i, o := range outs {
		outIDs = append(outIDs, pb.buf("out"+itoa(i), ir.BufTemp, o))
	}
	pb.kernel("p", op, inIDs, outIDs, attrs)
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
	// Poison the outputs so a kernel that skips elements is caught.
	for _, id := range outIDs {
		for j := range x.F32(id) {
			x.F32(id)[j] = float32(math.NaN())
		}
	}
	if err := x.Run("p"); err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(outIDs))
	for i, id := range outIDs {
		res[i] = append([]float32(nil), x.F32(id)...)
	}
	return res
}

func newRand(t testing.TB) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 1))
}

// normals returns n draws from N(0, sd²); never zeros.
func normals(r *rand.Rand, n int, sd float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * sd)
	}
	return v
}

// uniforms returns n draws from [lo, hi).
func uniforms(r *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return v
}

// closeTo checks |got − want| ≤ atol + rtol·|want| element by element.
func closeTo(t testing.TB, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= atol+rtol*math.Abs(want[i])) {
			if bad < 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (diff %.3g)", what, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d values out of tolerance", what, bad, len(got))
	}
}

// sizes are the awkward lengths every kernel is tested at; the last is
// large enough to split across workers.
var sizes = []int{1, 7, 33, 257, 70001}
