package cpu

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/ir"
)

// mlp is a hand-built plan of a 2-layer MLP classifier: a train program
// (forward, backward, AdamW on layer 1 and SGD with momentum on layer 2, in
// place) and an eval program (loss and accuracy). Buffers are laid out by
// hand, each at its own offset.
type mlp struct {
	plan                       *ir.Plan
	x, y, step                 int // inputs
	w1, b1, w2, b2             int // params
	loss, correct, evalLoss    int
	batch, in, hidden, classes int
}

func newMLP(batch, in, hidden, classes int) *mlp {
	m := &mlp{batch: batch, in: in, hidden: hidden, classes: classes}
	pb := newPlanBuilder()
	f := func(dims ...int) ir.Type { return ir.Tensor(ir.F32, dims...) }
	m.x = pb.buf("x", ir.BufInput, f(batch, in))
	m.y = pb.buf("y", ir.BufInput, ir.Tensor(ir.I32, batch))
	m.step = pb.buf("step", ir.BufInput, ir.Scalar(ir.I32))
	m.w1 = pb.buf("w1", ir.BufParam, f(in, hidden))
	m.b1 = pb.buf("b1", ir.BufParam, f(hidden))
	m.w2 = pb.buf("w2", ir.BufParam, f(hidden, classes))
	m.b2 = pb.buf("b2", ir.BufParam, f(classes))
	pb.plan.Inits = []ir.Init{
		{Buffer: m.w1, Kind: "he_normal", FanIn: in, FanOut: hidden, Seed: 11, Scale: math.Sqrt(2 / float64(in))},
		{Buffer: m.b1, Kind: "zeros"},
		{Buffer: m.w2, Kind: "xavier_uniform", FanIn: hidden, FanOut: classes, Seed: 12, Scale: math.Sqrt(6 / float64(hidden+classes))},
		{Buffer: m.b2, Kind: "zeros"},
	}
	mw1, vw1 := pb.buf("m_w1", ir.BufState, f(in, hidden)), pb.buf("v_w1", ir.BufState, f(in, hidden))
	mb1, vb1 := pb.buf("m_b1", ir.BufState, f(hidden)), pb.buf("v_b1", ir.BufState, f(hidden))
	uw2, ub2 := pb.buf("mom_w2", ir.BufState, f(hidden, classes)), pb.buf("mom_b2", ir.BufState, f(classes))

	lr := pb.buf("lr", ir.BufTemp, ir.Scalar(ir.F32))
	one := pb.buf("one", ir.BufTemp, ir.Scalar(ir.F32))
	h1 := pb.buf("h1", ir.BufTemp, f(batch, hidden))
	a1 := pb.buf("a1", ir.BufTemp, f(batch, hidden))
	logits := pb.buf("logits", ir.BufTemp, f(batch, classes))
	m.loss = pb.buf("loss", ir.BufTemp, ir.Scalar(ir.F32))
	dlogits := pb.buf("dlogits", ir.BufTemp, f(batch, classes))
	dw2, db2 := pb.buf("dw2", ir.BufTemp, f(hidden, classes)), pb.buf("db2", ir.BufTemp, f(classes))
	dh1 := pb.buf("dh1", ir.BufTemp, f(batch, hidden))
	dw1, db1 := pb.buf("dw1", ir.BufTemp, f(in, hidden)), pb.buf("db1", ir.BufTemp, f(hidden))
	m.evalLoss = pb.buf("eval_loss", ir.BufTemp, ir.Scalar(ir.F32))
	m.correct = pb.buf("correct", ir.BufTemp, ir.Scalar(ir.F32))

	tr := "train"
	pb.kernel(tr, "lr_schedule", []int{m.step}, []int{lr}, ir.Attrs{"kind": "cosine", "lr": 0.01, "min_lr": 0.001, "warmup": 3, "total": 100})
	pb.kernel(tr, "fill", nil, []int{one}, ir.Attrs{"value": 1.0, "shape": []int{}})
	pb.kernel(tr, "matmul_bias_act", []int{m.x, m.w1, m.b1}, []int{h1}, ir.Attrs{"act": "none"})
	pb.kernel(tr, "relu", []int{h1}, []int{a1}, nil)
	pb.kernel(tr, "matmul_bias_act", []int{a1, m.w2, m.b2}, []int{logits}, ir.Attrs{"act": "none"})
	pb.kernel(tr, "softmax_xent_fused", []int{logits, m.y, one}, []int{m.loss, dlogits}, ir.Attrs{"label_smoothing": 0.05})
	pb.kernel(tr, "matmul", []int{a1, dlogits}, []int{dw2}, ir.Attrs{"transpose_a": true})
	pb.kernel(tr, "reduce_sum", []int{dlogits}, []int{db2}, ir.Attrs{"axis": 0})
	pb.kernel(tr, "matmul_act_grad", []int{dlogits, m.w2, h1}, []int{dh1}, ir.Attrs{"transpose_b": true, "act": "relu"})
	pb.kernel(tr, "matmul", []int{m.x, dh1}, []int{dw1}, ir.Attrs{"transpose_a": true})
	pb.kernel(tr, "reduce_sum", []int{dh1}, []int{db1}, ir.Attrs{"axis": 0})
	adam := ir.Attrs{"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-4}
	pb.kernel(tr, "adamw", []int{m.w1, dw1, mw1, vw1, lr, m.step},
		[]int{pb.alias("w1'", m.w1), pb.alias("m_w1'", mw1), pb.alias("v_w1'", vw1)}, adam)
	pb.kernel(tr, "adamw", []int{m.b1, db1, mb1, vb1, lr, m.step},
		[]int{pb.alias("b1'", m.b1), pb.alias("m_b1'", mb1), pb.alias("v_b1'", vb1)}, adam)
	pb.kernel(tr, "sgd", []int{m.w2, dw2, uw2, lr}, []int{pb.alias("w2'", m.w2), pb.alias("mom_w2'", uw2)}, ir.Attrs{"momentum": 0.9})
	pb.kernel(tr, "sgd", []int{m.b2, db2, ub2, lr}, []int{pb.alias("b2'", m.b2), pb.alias("mom_b2'", ub2)}, ir.Attrs{"momentum": 0.9})

	ev := "eval"
	pb.kernel(ev, "matmul_bias_act", []int{m.x, m.w1, m.b1}, []int{a1}, ir.Attrs{"act": "relu"})
	pb.kernel(ev, "matmul_bias_act", []int{a1, m.w2, m.b2}, []int{logits}, ir.Attrs{"act": "none"})
	pb.kernel(ev, "softmax_xent", []int{logits, m.y}, []int{m.evalLoss}, nil)
	pb.kernel(ev, "count_correct", []int{logits, m.y}, []int{m.correct}, nil)
	m.plan = pb.build()
	return m
}

// feed writes a batch of Gaussian blobs: class c is centred on a fixed
// random point, so the classes are separable.
func (m *mlp) feed(x *Executable, r *rand.Rand, step int) {
	centres := rand.New(rand.NewPCG(99, 0))
	c := normals(centres, m.classes*m.in, 1)
	xs, ys := x.F32(m.x), x.I32(m.y)
	for i := range m.batch {
		k := r.IntN(m.classes)
		ys[i] = int32(k)
		for j := range m.in {
			xs[i*m.in+j] = c[k*m.in+j] + float32(r.NormFloat64())
		}
	}
	x.I32(m.step)[0] = int32(step)
}

func TestMLPTrains(t *testing.T) {
	m := newMLP(64, 100, 32, 5)
	x, err := testPools[1].prepare(m.plan)
	if err != nil {
		t.Fatal(err)
	}
	r := newRand(t)
	var first, last float32
	for step := range 40 {
		m.feed(x, r, step)
		if err := x.Run("train"); err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = x.F32(m.loss)[0]
		}
		last = x.F32(m.loss)[0]
	}
	m.feed(x, r, 0)
	if err := x.Run("eval"); err != nil {
		t.Fatal(err)
	}
	acc := x.F32(m.correct)[0] / float32(m.batch)
	t.Logf("loss %.4f -> %.4f, eval loss %.4f, accuracy %.3f", first, last, x.F32(m.evalLoss)[0], acc)
	if !(last < first/2) || acc < 0.9 {
		t.Errorf("training did not learn separable blobs: loss %.4f -> %.4f, accuracy %.3f", first, last, acc)
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	m := newMLP(128, 784, 256, 10)
	for _, be := range testPools {
		x, err := be.prepare(m.plan)
		if err != nil {
			t.Fatal(err)
		}
		m.feed(x, newRand(t), 0)
		allocs := testing.AllocsPerRun(10, func() {
			if err := x.Run("train"); err != nil {
				t.Fatal(err)
			}
			if err := x.Run("eval"); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d workers: Run allocates %.1f times per train+eval step", be.pool.Workers(), allocs)
		}
	}
}

func TestInitDeterministic(t *testing.T) {
	m := newMLP(8, 784, 256, 10)
	var states [][]byte
	for _, be := range testPools {
		for range 2 {
			x, err := be.prepare(m.plan)
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, x.SaveState(nil))
		}
	}
	for i, s := range states[1:] {
		if !bytes.Equal(s, states[0]) {
			t.Fatalf("preparation %d initialised different bytes", i+1)
		}
	}
	x, _ := testPools[1].prepare(m.plan)
	check := func(name string, v []float32, wantStd float64) {
		var s, s2 float64
		for _, f := range v {
			s += float64(f)
			s2 += float64(f) * float64(f)
		}
		mean := s / float64(len(v))
		std := math.Sqrt(s2/float64(len(v)) - mean*mean)
		// 200k (w1) and 2.5k (w2) draws: the std's relative standard error
		// is 0.2% and 1.6%; allow 5 of them.
		tol := 5 / math.Sqrt(2*float64(len(v)))
		if math.Abs(std/wantStd-1) > tol || math.Abs(mean) > 5*wantStd/math.Sqrt(float64(len(v))) {
			t.Errorf("%s: mean %.5f std %.5f, want 0 and %.5f", name, mean, std, wantStd)
		}
	}
	check("w1 (he_normal)", x.F32(m.w1), math.Sqrt(2.0/784))
	check("w2 (xavier_uniform)", x.F32(m.w2), math.Sqrt(6.0/266)/math.Sqrt(3))
	for _, b := range []int{m.b1, m.b2} {
		for _, v := range x.F32(b) {
			if v != 0 {
				t.Fatal("zeros init left a nonzero")
			}
		}
	}
	m.plan.Inits[0].Seed++
	y, _ := testPools[1].prepare(m.plan)
	if slices.Equal(x.F32(m.w1), y.F32(m.w1)) {
		t.Error("a different seed gave the same weights")
	}
}

func TestSaveLoadState(t *testing.T) {
	m := newMLP(16, 20, 8, 3)
	r := newRand(t)
	a, err := testPools[1].prepare(m.plan)
	if err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		m.feed(a, r, step)
		if err := a.Run("train"); err != nil {
			t.Fatal(err)
		}
	}
	state := a.SaveState([]byte("prefix"))[len("prefix"):]
	if int64(len(state)) != a.StateBytes() {
		t.Fatalf("state is %d bytes, StateBytes says %d", len(state), a.StateBytes())
	}
	b, _ := testPools[0].prepare(m.plan)
	if err := b.LoadState(state); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.SaveState(nil), state) {
		t.Fatal("state did not round-trip")
	}
	// Both continue identically (the one-worker and four-worker kernels
	// must agree bit for bit on the same inputs for this to hold).
	m.feed(a, rand.New(rand.NewPCG(5, 5)), 3)
	m.feed(b, rand.New(rand.NewPCG(5, 5)), 3)
	if err := a.Run("train"); err != nil {
		t.Fatal(err)
	}
	if err := b.Run("train"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.SaveState(nil), b.SaveState(nil)) {
		t.Error("a restored executable diverged from the original after one step")
	}
	if err := b.LoadState(state[1:]); err == nil {
		t.Error("LoadState accepted a truncated state")
	}
}

func TestRunChecked(t *testing.T) {
	pb := newPlanBuilder()
	vt := ir.Tensor(ir.F32, 100)
	in := pb.buf("x", ir.BufInput, vt)
	s, l, e := pb.buf("s", ir.BufTemp, vt), pb.buf("l", ir.BufTemp, vt), pb.buf("e", ir.BufTemp, vt)
	pb.kernel("p", "scale", []int{in}, []int{s}, ir.Attrs{"factor": 1e10})
	pb.kernel("p", "log", []int{s}, []int{l}, nil)
	pb.kernel("p", "exp", []int{l}, []int{e}, nil)
	x, err := testPools[0].prepare(pb.build())
	if err != nil {
		t.Fatal(err)
	}
	xs := x.F32(in)
	for i := range xs {
		xs[i] = float32(i + 1)
	}
	for _, c := range []struct {
		poke float32
		want int
	}{{1, -1}, {-1, 1}, {1e30, 0}} {
		xs[50] = c.poke
		k, err := x.RunChecked("p")
		if err != nil || k != c.want {
			t.Errorf("x[50] = %g: RunChecked = %d, %v; want kernel %d", c.poke, k, err, c.want)
		}
	}
}

func TestPrepareErrors(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func(pb *planBuilder)
	}{
		{"unknown op", `no kernel for op "frobnicate"`, func(pb *planBuilder) {
			pb.kernel("p", "frobnicate", []int{0}, []int{1}, nil)
		}},
		{"matmul in place", "cannot run in place", func(pb *planBuilder) {
			pb.kernel("p", "matmul", []int{0, 0}, []int{pb.alias("c", 0)}, nil)
		}},
		{"partial overlap", "overlaps", func(pb *planBuilder) {
			o := pb.alias("o", 1)
			pb.plan.Buffers[o].Offset += 4
			pb.plan.Buffers[o].Type, pb.plan.Buffers[o].Bytes = ir.Tensor(ir.F32, 4, 3), 48
			pb.kernel("p", "add", []int{1, 1}, []int{2}, nil)
			pb.kernel("p", "relu", []int{1}, []int{o}, nil)
		}},
		{"wrong output type", "the op gives", func(pb *planBuilder) {
			pb.kernel("p", "matmul", []int{0, 0}, []int{2}, nil)
		}},
		{"bad buffer", "does not exist", func(pb *planBuilder) {
			pb.kernel("p", "relu", []int{7}, []int{1}, nil)
		}},
		{"unknown init", "unknown initializer", func(pb *planBuilder) {
			pb.plan.Inits = append(pb.plan.Inits, ir.Init{Buffer: 0, Kind: "orthogonal"})
		}},
		{"outside arena", "do not fit", func(pb *planBuilder) {
			pb.plan.Buffers[2].Offset = 1 << 20
		}},
	}
	for _, c := range cases {
		pb := newPlanBuilder()
		pb.buf("a", ir.BufParam, ir.Tensor(ir.F32, 4, 4))
		pb.buf("b", ir.BufTemp, ir.Tensor(ir.F32, 4, 3))
		pb.buf("c", ir.BufTemp, ir.Tensor(ir.F32, 4, 3))
		c.edit(pb)
		_, err := testPools[0].Prepare(pb.build())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Prepare error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	m := newMLP(4, 3, 2, 2)
	x, err := testPools[0].prepare(m.plan)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Run("nope"); err == nil {
		t.Error("Run of an unknown program succeeded")
	}
	x.Close()
	if err := x.Run("train"); err == nil {
		t.Error("Run after Close succeeded")
	}
}

// TestEveryOpHasAKernel keeps the kernel table in step with the op table.
func TestEveryOpHasAKernel(t *testing.T) {
	have := Ops()
	if !slices.IsSorted(have) {
		t.Error("Ops is not sorted")
	}
	for _, d := range ir.Ops() {
		if _, ok := slices.BinarySearch(have, d.Name); !ok {
			t.Errorf("op %s has no cpu kernel", d.Name)
		}
	}
	be, err := backends.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	if caps := be.Capabilities(); !slices.Equal(caps.Ops, have) || caps.Threads < 1 {
		t.Errorf("capabilities %+v", caps)
	}
}

// TestPlanFromJSON runs a plan that went through its file form, where every
// attribute number is a float64 and int lists are []any.
func TestPlanFromJSON(t *testing.T) {
	m := newMLP(16, 20, 8, 3)
	data, err := json.Marshal(m.plan)
	if err != nil {
		t.Fatal(err)
	}
	var decoded ir.Plan
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	var states [][]byte
	for _, p := range []*ir.Plan{m.plan, &decoded} {
		x, err := testPools[0].prepare(p)
		if err != nil {
			t.Fatal(err)
		}
		m.feed(x, rand.New(rand.NewPCG(1, 1)), 2)
		if err := x.Run("train"); err != nil {
			t.Fatal(err)
		}
		states = append(states, x.SaveState(nil))
	}
	if !bytes.Equal(states[0], states[1]) {
		t.Error("the decoded plan computes something else")
	}
}
