package runner

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// Buffer ids of the test plan.
const (
	bufX = iota
	bufY
	bufStep
	bufLoss
	bufLR
	bufW
	bufB
	bufEX
	bufEY
	bufELoss
	bufECorrect
)

// testDataset is a small blobs problem: 480 training examples (15 steps of
// 32 per epoch) and 120 evaluation examples (batches of 50, 50 and a padded 20).
func testDataset() schema.Dataset {
	return schema.Dataset{Name: "blobs", Batch: 32, EvalBatch: 50, Shuffle: true, Normalize: true,
		EvalFraction: 0.2, Samples: 600, Centers: 3, Dim: 4, Noise: 1, Seed: 7}
}

// testPlan builds by hand the plan a compiler would emit for a linear
// softmax classifier over ds.
func testPlan(t testing.TB, ds schema.Dataset, steps, logEvery, evalEvery int) *ir.Plan {
	t.Helper()
	m, err := data.Meta(ds, ".")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	B, EB, F, C := ds.Batch, ds.EvalBatch, m.Features, m.Classes
	buf := func(id int, name string, kind ir.BufferKind, typ ir.Type) ir.Buffer {
		return ir.Buffer{ID: id, Name: name, Kind: kind, Type: typ, Bytes: typ.Bytes()}
	}
	loc := ir.Loc{File: "specs/test.cue", Line: 5, Col: 7}
	return &ir.Plan{
		Format: ir.PlanFormat, Name: "blobs-linear", Hash: "3f9a1c2e4b7d0011223344556677889900aabbccddeeff00112233445566778",
		Target: "cpu",
		Data: ir.DataPlan{Dataset: raw, SpecDir: ".", Features: F, Classes: C, TrainN: m.TrainN, EvalN: m.EvalN,
			Batch: B, EvalBatch: EB, Shuffle: ds.Shuffle},
		Schedule: ir.Schedule{Steps: steps, StepsPerEpoch: m.TrainN / B, EvalEvery: evalEvery, LogEvery: logEvery, Seed: 1,
			LR: ir.LRSchedule{Kind: "constant", LR: 0.1}},
		Buffers: []ir.Buffer{
			buf(bufX, "x", ir.BufInput, ir.Tensor(ir.F32, B, F)),
			buf(bufY, "y", ir.BufInput, ir.Tensor(ir.I32, B)),
			buf(bufStep, "step", ir.BufInput, ir.Scalar(ir.I32)),
			buf(bufLoss, "loss", ir.BufTemp, ir.Scalar(ir.F32)),
			buf(bufLR, "lr", ir.BufTemp, ir.Scalar(ir.F32)),
			buf(bufW, "w", ir.BufParam, ir.Tensor(ir.F32, F, C)),
			buf(bufB, "b", ir.BufParam, ir.Tensor(ir.F32, C)),
			buf(bufEX, "eval.x", ir.BufInput, ir.Tensor(ir.F32, EB, F)),
			buf(bufEY, "eval.y", ir.BufInput, ir.Tensor(ir.I32, EB)),
			buf(bufELoss, "eval.loss", ir.BufTemp, ir.Scalar(ir.F32)),
			buf(bufECorrect, "eval.correct", ir.BufTemp, ir.Scalar(ir.F32)),
		},
		Programs: []ir.Program{
			{Name: "train",
				Inputs:  []ir.Binding{{Name: "x", Buffer: bufX}, {Name: "y", Buffer: bufY}, {Name: "step", Buffer: bufStep}},
				Outputs: []ir.Binding{{Name: "loss", Buffer: bufLoss}, {Name: "lr", Buffer: bufLR}},
				Kernels: []ir.Kernel{
					{Name: "k0", Op: "matmul_bias_act", FusedFrom: []string{"matmul", "add"}, Loc: loc},
					{Name: "k1", Op: "softmax_xent_fused", FusedFrom: []string{"softmax_xent", "softmax_xent_grad"}, Loc: ir.Loc{File: "specs/test.cue", Line: 6, Col: 7}},
					{Name: "k2", Op: "sgd", Loc: ir.Loc{File: "specs/test.cue", Line: 7, Col: 12}},
				}},
			{Name: "eval",
				Inputs:  []ir.Binding{{Name: "x", Buffer: bufEX}, {Name: "y", Buffer: bufEY}},
				Outputs: []ir.Binding{{Name: "loss", Buffer: bufELoss}, {Name: "correct", Buffer: bufECorrect}},
				Kernels: []ir.Kernel{{Name: "k0", Op: "matmul_bias_act"}, {Name: "k1", Op: "softmax_xent"}, {Name: "k2", Op: "count_correct"}}},
		},
	}
}

// fakeExe is a backends.Executable computing a linear softmax classifier
// with plain SGD in Go. Run does not allocate.
type fakeExe struct {
	f32       map[int][]float32
	i32       map[int][]int32
	F, C      int
	lr        float32
	logits    []float32
	gw, gb    []float32
	nanAt     int // step index (0-based) whose loss is NaN; -1 none
	poisonAt  int // step index whose update writes NaN into w, its loss finite; -1 none
	afterRun  func(step int)
	trainRuns int
	losses    []float32 // loss of every train Run, by step index

	wAtNaN        []float32 // w before step nanAt first ran
	checkedNaN    bool      // RunChecked reached step nanAt
	replayMatched bool      // ... with the same w as the original run
	checkedSteps  []int
}

func newFake(p *ir.Plan) *fakeExe {
	f := &fakeExe{f32: map[int][]float32{}, i32: map[int][]int32{}, F: p.Data.Features, C: p.Data.Classes,
		lr: float32(p.Schedule.LR.LR), nanAt: -1, poisonAt: -1}
	for _, b := range p.Buffers {
		n := int(b.Type.Shape.Elems())
		if b.Type.DType == ir.F32 {
			f.f32[b.ID] = make([]float32, n)
		} else {
			f.i32[b.ID] = make([]int32, n)
		}
	}
	w := f.f32[bufW]
	for i := range w {
		w[i] = float32(math.Sin(float64(i)+1)) * 0.1 // deterministic, not zero
	}
	f.logits = make([]float32, max(p.Data.Batch, p.Data.EvalBatch)*f.C)
	f.gw, f.gb = make([]float32, f.F*f.C), make([]float32, f.C)
	f.losses = make([]float32, 0, 4096)
	return f
}

func (f *fakeExe) F32(id int) []float32 { return f.f32[id] }
func (f *fakeExe) I32(id int) []int32   { return f.i32[id] }
func (f *fakeExe) Close() error         { return nil }

// forward computes softmax probabilities into f.logits and returns the
// summed loss, the correct count and the number of rows with label >= 0.
func (f *fakeExe) forward(x []float32, y []int32) (loss float64, correct, n int) {
	w, b, C := f.f32[bufW], f.f32[bufB], f.C
	for i := range y {
		row, lg := x[i*f.F:(i+1)*f.F], f.logits[i*C:(i+1)*C]
		copy(lg, b)
		for j, v := range row {
			for c := range C {
				lg[c] += v * w[j*C+c]
			}
		}
		best, mx := 0, lg[0]
		for c := range C {
			if lg[c] > mx {
				best, mx = c, lg[c]
			}
		}
		var z float64
		for c := range C {
			e := math.Exp(float64(lg[c] - mx))
			lg[c] = float32(e)
			z += e
		}
		for c := range C {
			lg[c] = float32(float64(lg[c]) / z)
		}
		if y[i] < 0 {
			continue
		}
		n++
		loss -= math.Log(float64(lg[y[i]]))
		if best == int(y[i]) {
			correct++
		}
	}
	return loss, correct, n
}

func (f *fakeExe) train() {
	x, y, step := f.f32[bufX], f.i32[bufY], int(f.i32[bufStep][0])
	if step == f.nanAt && f.wAtNaN == nil {
		f.wAtNaN = append([]float32(nil), f.f32[bufW]...)
	}
	loss, _, n := f.forward(x, y)
	C, w, b := f.C, f.f32[bufW], f.f32[bufB]
	clear(f.gw)
	clear(f.gb)
	for i := range y {
		row, p := x[i*f.F:(i+1)*f.F], f.logits[i*C:(i+1)*C]
		p[y[i]]--
		for c := range C {
			f.gb[c] += p[c]
		}
		for j, v := range row {
			for c := range C {
				f.gw[j*C+c] += v * p[c]
			}
		}
	}
	s := f.lr / float32(n)
	for i := range w {
		w[i] -= s * f.gw[i]
	}
	for c := range b {
		b[c] -= s * f.gb[c]
	}
	l := float32(loss / float64(n))
	if step == f.nanAt {
		l = float32(math.NaN())
		w[0] = float32(math.NaN())
	}
	if step == f.poisonAt {
		w[1] = float32(math.Inf(1))
	}
	f.f32[bufLoss][0], f.f32[bufLR][0] = l, f.lr
	if step >= len(f.losses) {
		f.losses = f.losses[:step+1]
	}
	f.losses[step] = l
}

func (f *fakeExe) eval() {
	loss, correct, n := f.forward(f.f32[bufEX], f.i32[bufEY])
	f.f32[bufELoss][0] = float32(loss / float64(max(n, 1)))
	f.f32[bufECorrect][0] = float32(correct)
}

func (f *fakeExe) Run(program string) error {
	switch program {
	case "train":
		f.train()
		f.trainRuns++
		if f.afterRun != nil {
			f.afterRun(int(f.i32[bufStep][0]))
		}
	case "eval":
		f.eval()
	default:
		return fmt.Errorf("no program %q", program)
	}
	return nil
}

// RunChecked reports k1 (the loss kernel) at step nanAt and k2 (the update)
// at step poisonAt.
func (f *fakeExe) RunChecked(program string) (int, error) {
	if program != "train" {
		return -1, f.Run(program)
	}
	step := int(f.i32[bufStep][0])
	f.checkedSteps = append(f.checkedSteps, step)
	if step == f.nanAt {
		f.checkedNaN = true
		f.replayMatched = equalBits(f.wAtNaN, f.f32[bufW])
		return 1, nil
	}
	f.train()
	if step == f.poisonAt {
		return 2, nil
	}
	return -1, nil
}

func (f *fakeExe) SaveState(dst []byte) []byte {
	for _, id := range []int{bufW, bufB} {
		for _, v := range f.f32[id] {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	}
	return dst
}

func (f *fakeExe) LoadState(src []byte) error {
	w, b := f.f32[bufW], f.f32[bufB]
	if len(src) != 4*(len(w)+len(b)) {
		return fmt.Errorf("state has %d bytes, want %d", len(src), 4*(len(w)+len(b)))
	}
	for _, s := range [][]float32{w, b} {
		for i := range s {
			s[i] = math.Float32frombits(binary.LittleEndian.Uint32(src))
			src = src[4:]
		}
	}
	return nil
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
