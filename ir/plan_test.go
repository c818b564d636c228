package ir

import (
	"encoding/json"
	"strings"
	"testing"
)

// testPlan: k0 h = matmul_bias_act(x, w, b); k1 a = relu h; k2 s = add a, a;
// k3 r = reduce_sum s. Temps reuse bytes: s takes h's place (h is dead after
// k1) and r takes a's (a is dead after k2).
func testPlan() *Plan {
	buf := func(id int, name string, kind BufferKind, t Type, off int64) Buffer {
		return Buffer{ID: id, Name: name, Kind: kind, Type: t, Offset: off, Bytes: t.Bytes()}
	}
	return &Plan{
		Format: PlanFormat, Name: "tiny", Hash: "0123456789abcdef0123", Target: "cpu",
		Options:  Options{OptLevel: 2, DisabledPass: []string{"cse"}},
		Schedule: Schedule{Steps: 10, StepsPerEpoch: 5, EvalEvery: 5, LogEvery: 1, Seed: 7, LR: LRSchedule{Kind: "constant", LR: 0.1}},
		Data:     DataPlan{Features: 6, Classes: 3, TrainN: 20, EvalN: 8, Batch: 4, EvalBatch: 4, Shuffle: true},
		Buffers: []Buffer{
			buf(0, "x", BufInput, Tensor(F32, 4, 6), 0),
			buf(1, "w", BufParam, Tensor(F32, 6, 3), 128),
			buf(2, "b", BufParam, Tensor(F32, 3), 256),
			buf(3, "h", BufTemp, Tensor(F32, 4, 3), 320),
			buf(4, "a", BufTemp, Tensor(F32, 4, 3), 384),
			buf(5, "s", BufTemp, Tensor(F32, 4, 3), 320),
			buf(6, "r", BufTemp, Tensor(F32, 4), 384),
		},
		Inits: []Init{{Buffer: 1, Kind: "he_normal", FanIn: 6, FanOut: 3, Seed: 1, Scale: 0.5773502691896257}, {Buffer: 2, Kind: "zeros"}},
		Programs: []Program{{
			Name:    "train",
			Inputs:  []Binding{{Name: "x", Buffer: 0}},
			Outputs: []Binding{{Name: "r", Buffer: 6}},
			Kernels: []Kernel{
				{Name: "k0", Op: "matmul_bias_act", FusedFrom: []string{"matmul", "bias_add"}, Ins: []int{0, 1, 2}, Outs: []int{3},
					Attrs: Attrs{"act": "none"}, FLOPs: 2*4*6*3 + 12, Bytes: 96 + 72 + 12 + 48, Loc: Loc{File: "t.cue", Line: 2, Col: 5}},
				{Name: "k1", Op: "relu", Ins: []int{3}, Outs: []int{4}, FLOPs: 12, Bytes: 96},
				{Name: "k2", Op: "add", Ins: []int{4, 4}, Outs: []int{5}, FLOPs: 12, Bytes: 144},
				{Name: "k3", Op: "reduce_sum", Ins: []int{5}, Outs: []int{6}, Attrs: Attrs{"axis": 1}, FLOPs: 12, Bytes: 3_000_000_000},
			},
		}},
		Memory: Memory{ArenaBytes: 448, PersistentBytes: 84, InputBytes: 96, TempBytes: 128, NaiveTempBytes: 4 * 1024 * 1024},
		Passes: []PassRecord{{Name: "fuse_gemm", Changed: true, Before: 5, After: 4, Note: "1 fused"}, {Name: "dce", Before: 4, After: 4}},
	}
}

func TestVerifyPlanOK(t *testing.T) {
	if err := VerifyPlan(testPlan()); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(p *Plan)
		want   string
	}{
		{"overlapping live temps", func(p *Plan) { p.Buffers[4].Offset = 320 },
			"program train: temps b3 (h, live k0..k1, bytes [320, 368)) and b4 (a, live k1..k2, bytes [320, 368)) overlap in the arena while both are live"},
		{"output live to end", func(p *Plan) { p.Buffers[6].Offset = 320 },
			"temps b5 (s, live k2..k3, bytes [320, 368)) and b6 (r, live k3..end, bytes [320, 336)) overlap"},
		{"misaligned offset", func(p *Plan) { p.Buffers[4].Offset = 388 }, "buffer b4 (a): offset 388 is not aligned to 64 bytes"},
		{"negative offset", func(p *Plan) { p.Buffers[4].Offset = -64 }, "buffer b4 (a): negative offset -64"},
		{"read before write", func(p *Plan) { p.Programs[0].Kernels[1].Ins = []int{5} },
			"program train: kernel 1 (k1 relu): reads temp b5 (s) before any kernel writes it"},
		{"outside arena", func(p *Plan) { p.Memory.ArenaBytes = 400 }, "buffer b4 (a): [384, 432) lies outside the 400-byte arena"},
		{"wrong bytes", func(p *Plan) { p.Buffers[3].Bytes = 4 }, "buffer b3 (h): 4 bytes, but tensor<f32,[4,3]> takes 48"},
		{"wrong id", func(p *Plan) { p.Buffers[3].ID = 9 }, "buffer b3 (h): id is 9, want its index 3"},
		{"param overlaps temp", func(p *Plan) { p.Buffers[2].Offset = 384 }, "buffer b2 (b, param) overlaps b4 (a, temp)"},
		{"input overlaps param", func(p *Plan) { p.Buffers[1].Offset = 64 }, "buffer b0 (x, input) overlaps b1 (w, param)"},
		{"unknown op", func(p *Plan) { p.Programs[0].Kernels[1].Op = "frob" }, `kernel 1 (k1 frob): unknown op "frob"`},
		{"missing buffer", func(p *Plan) { p.Programs[0].Kernels[1].Outs = []int{42} }, "kernel 1 (k1 relu): output 0: no buffer b42"},
		{"wrong out type", func(p *Plan) { p.Programs[0].Kernels[3].Attrs = Attrs{"axis": 0} },
			"kernel 3 (k3 reduce_sum): output b6 (r) is tensor<f32,[4]>, reduce_sum gives tensor<f32,[3]>"},
		{"bad attrs", func(p *Plan) { p.Programs[0].Kernels[0].Attrs = Attrs{"act": "swish"} }, `attribute "act" is "swish"`},
		{"kernel names", func(p *Plan) { p.Programs[0].Kernels[2].Name = "k7" }, `kernel 2 (k7 add): named "k7", want "k2"`},
		{"bad binding", func(p *Plan) { p.Programs[0].Outputs[0].Buffer = 7 }, `program train: output "r": no buffer b7`},
		{"unwritten output", func(p *Plan) { p.Programs[0].Outputs[0].Buffer = 4; p.Programs[0].Kernels = p.Programs[0].Kernels[:1] },
			`output "r": temp b4 is never written`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan()
			tc.break_(p)
			err := VerifyPlan(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant it to mention %q", err, tc.want)
			}
		})
	}
}

func TestPrintPlan(t *testing.T) {
	want := `plan tiny 0123456789ab target=cpu -O2 arena 448 B (persistent 84 B, inputs 96 B, temp 128 B; naive temp 4.0 MiB)
disabled passes: cse
schedule steps=10 steps_per_epoch=5 eval_every=5 log_every=1 seed=7 lr=constant(lr=0.1, min_lr=0.0, warmup=0, total=0)
data features=6 classes=3 train=20 eval=8 batch=4 eval_batch=4 shuffle=true

buffers
  b0  x  input  tensor<f32,[4,6]>  @0    96 B
  b1  w  param  tensor<f32,[6,3]>  @128  72 B
  b2  b  param  tensor<f32,[3]>    @256  12 B
  b3  h  temp   tensor<f32,[4,3]>  @320  48 B
  b4  a  temp   tensor<f32,[4,3]>  @384  48 B
  b5  s  temp   tensor<f32,[4,3]>  @320  48 B
  b6  r  temp   tensor<f32,[4]>    @384  16 B
inits
  b1  w  he_normal  fan_in=6 fan_out=3 scale=0.5773502691896257 seed=1
  b2  b  zeros      fan_in=0 fan_out=0 scale=0.0 seed=0

program train  (inputs x=b0; outputs r=b6)  4 kernels, 192 FLOP, 3.0 GB
  k0  matmul_bias_act  b0 b1 b2 -> b3  {act = "none"}  156 FLOP   228 B  fused_from [matmul bias_add]  loc("t.cue":2:5)
  k1  relu             b3 -> b4                         12 FLOP    96 B
  k2  add              b4 b4 -> b5                      12 FLOP   144 B
  k3  reduce_sum       b5 -> b6        {axis = 1}       12 FLOP  3.0 GB

passes
  fuse_gemm  changed  5 -> 4 ops  1 fused
  dce        -        4 -> 4 ops
`
	p := testPlan()
	got := PrintPlan(p)
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// A plan read back from JSON (numbers become float64) prints the same.
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if again := PrintPlan(&back); again != got {
		t.Fatalf("after JSON:\n%s", again)
	}
	if err := VerifyPlan(&back); err != nil {
		t.Fatalf("after JSON: %v", err)
	}
}
