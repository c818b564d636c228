// Package kerneltest holds one small plan per kernel variant, for checking
// backends against each other: the compile check builds every case's CUDA,
// and the GPU check (scripts/gpu-check.sh) runs every case on the CPU and
// CUDA backends on fresh random inputs and compares the outputs.
package kerneltest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/expc-dev/expc/ir"
)

// Fill says how to draw one input.
type Fill struct {
	Kind string  // "normal", "positive", "labels", "step", "one", or a 0/1 mask (sparse.go): "mask_nm", "mask_block", "mask_density"
	Arg  float64 // normal: std (default 1); labels: classes; step: the step
}

// Case is one kernel over fresh buffers.
type Case struct {
	Name  string
	Op    string
	Ins   []ir.Type
	Fill  []Fill // per input; default normal
	Attrs ir.Attrs
	Tol   float64     // bound on ‖gpu − cpu‖ / ‖cpu‖ per output
	Alias map[int]int // output -> input it overwrites in place
	// Launch, if set, is the cuda plan's Kernel.Launch (a variant or tile
	// the generator would not choose for these sizes); nil: the generator's.
	Launch ir.Attrs
}

func f32(shape ...int) ir.Type { return ir.Tensor(ir.F32, shape...) }
func i32(shape ...int) ir.Type { return ir.Tensor(ir.I32, shape...) }

var scalarF, scalarI = ir.Scalar(ir.F32), ir.Scalar(ir.I32)

// Cases lists the cases: every op of the base table, with the variants that
// change the generated code (activations, transposes, tiles, in place).
func Cases() []Case {
	var cs []Case
	add := func(c Case) {
		if c.Tol == 0 {
			c.Tol = 1e-6
		}
		cs = append(cs, c)
	}
	x := f32(257, 33)
	for _, op := range []string{"neg", "square", "relu"} {
		add(Case{Name: op, Op: op, Ins: []ir.Type{x}})
	}
	for _, op := range []string{"exp", "gelu", "tanh", "sigmoid"} {
		add(Case{Name: op, Op: op, Ins: []ir.Type{x}, Fill: []Fill{{"normal", 3}}, Tol: 3e-6})
	}
	add(Case{Name: "log", Op: "log", Ins: []ir.Type{x}, Fill: []Fill{{Kind: "positive"}}})
	add(Case{Name: "sqrt", Op: "sqrt", Ins: []ir.Type{x}, Fill: []Fill{{Kind: "positive"}}})
	add(Case{Name: "relu in place", Op: "relu", Ins: []ir.Type{x}, Alias: map[int]int{0: 0}})
	for _, op := range []string{"add", "sub", "mul"} {
		add(Case{Name: op, Op: op, Ins: []ir.Type{x, x}})
	}
	add(Case{Name: "div", Op: "div", Ins: []ir.Type{x, x}, Fill: []Fill{{"normal", 1}, {Kind: "positive"}}})
	for _, act := range ir.Activations {
		add(Case{Name: act + "_grad", Op: act + "_grad", Ins: []ir.Type{x, x}, Fill: []Fill{{"normal", 1}, {"normal", 3}}, Tol: 3e-6})
	}
	add(Case{Name: "scale", Op: "scale", Ins: []ir.Type{x}, Attrs: ir.Attrs{"factor": 0.37}})
	add(Case{Name: "bias_add", Op: "bias_add", Ins: []ir.Type{f32(67, 129), f32(129)}})
	add(Case{Name: "fill", Op: "fill", Attrs: ir.Attrs{"value": 1.5, "shape": []int{300}}})

	// GEMMs: every transpose pair on odd sizes, each tile, the epilogues.
	for _, t := range []struct{ ta, tb bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		a, b := f32(130, 75), f32(75, 97)
		if t.ta {
			a = f32(75, 130)
		}
		if t.tb {
			b = f32(97, 75)
		}
		add(Case{Name: fmt.Sprintf("matmul ta=%v tb=%v", t.ta, t.tb), Op: "matmul", Ins: []ir.Type{a, b},
			Attrs: ir.Attrs{"transpose_a": t.ta, "transpose_b": t.tb}, Tol: 1e-5})
	}
	add(Case{Name: "matmul 1024x1024x1024", Op: "matmul", Ins: []ir.Type{f32(1024, 1024), f32(1024, 1024)}, Tol: 1e-5})
	add(Case{Name: "matmul 128x784 · 784x512", Op: "matmul", Ins: []ir.Type{f32(128, 784), f32(784, 512)}, Tol: 1e-5})
	add(Case{Name: "matmul narrow 128x256 · 256x10", Op: "matmul", Ins: []ir.Type{f32(128, 256), f32(256, 10)}, Tol: 1e-5})
	for _, act := range append([]string{"none"}, ir.Activations...) {
		add(Case{Name: "matmul_bias_act " + act, Op: "matmul_bias_act", Ins: []ir.Type{f32(128, 96), f32(96, 200), f32(200)},
			Attrs: ir.Attrs{"act": act}, Tol: 1e-5})
		add(Case{Name: "matmul_act_grad " + act, Op: "matmul_act_grad", Ins: []ir.Type{f32(128, 10), f32(200, 10), f32(128, 200)},
			Attrs: ir.Attrs{"act": act, "transpose_b": true}, Fill: []Fill{{"normal", 1}, {"normal", 1}, {"normal", 3}}, Tol: 1e-5})
	}
	add(Case{Name: "matmul_bias_act no bias", Op: "matmul_bias_act", Ins: []ir.Type{f32(64, 64), f32(64, 64)}, Attrs: ir.Attrs{"act": "relu"}, Tol: 1e-5})

	add(Case{Name: "reduce_sum axis 0", Op: "reduce_sum", Ins: []ir.Type{f32(128, 10)}, Attrs: ir.Attrs{"axis": 0}})
	add(Case{Name: "reduce_sum axis 1", Op: "reduce_sum", Ins: []ir.Type{f32(64, 300)}, Attrs: ir.Attrs{"axis": 1}})
	add(Case{Name: "reduce_sum middle", Op: "reduce_sum", Ins: []ir.Type{f32(4, 50, 6)}, Attrs: ir.Attrs{"axis": 1}})
	add(Case{Name: "reduce_sum all", Op: "reduce_sum", Ins: []ir.Type{f32(5000)}, Attrs: ir.Attrs{"axis": 0}})

	xent := ir.Attrs{"label_smoothing": 0.1, "z_loss": 1e-3}
	for _, sh := range [][2]int{{128, 10}, {64, 1000}} {
		l, y := f32(sh[0], sh[1]), i32(sh[0])
		lab := Fill{"labels", float64(sh[1])}
		add(Case{Name: fmt.Sprintf("softmax_xent %dx%d", sh[0], sh[1]), Op: "softmax_xent", Ins: []ir.Type{l, y}, Fill: []Fill{{"normal", 3}, lab}, Attrs: xent, Tol: 1e-5})
		add(Case{Name: fmt.Sprintf("softmax_xent_grad %dx%d", sh[0], sh[1]), Op: "softmax_xent_grad", Ins: []ir.Type{l, y, scalarF},
			Fill: []Fill{{"normal", 3}, lab, {Kind: "one"}}, Attrs: xent, Tol: 1e-5})
		add(Case{Name: fmt.Sprintf("softmax_xent_fused %dx%d", sh[0], sh[1]), Op: "softmax_xent_fused", Ins: []ir.Type{l, y, scalarF},
			Fill: []Fill{{"normal", 3}, lab, {Kind: "one"}}, Attrs: xent, Tol: 1e-5})
		add(Case{Name: fmt.Sprintf("count_correct %dx%d", sh[0], sh[1]), Op: "count_correct", Ins: []ir.Type{l, y}, Fill: []Fill{{"normal", 3}, lab}})
	}
	add(Case{Name: "softmax_xent_grad in place", Op: "softmax_xent_grad", Ins: []ir.Type{f32(128, 10), i32(128), scalarF},
		Fill: []Fill{{"normal", 3}, {"labels", 10}, {Kind: "one"}}, Attrs: xent, Tol: 1e-5, Alias: map[int]int{0: 0}})

	add(Case{Name: "lr_schedule cosine", Op: "lr_schedule", Ins: []ir.Type{scalarI}, Fill: []Fill{{"step", 357}},
		Attrs: ir.Attrs{"kind": "cosine", "lr": 0.1, "min_lr": 0.001, "warmup": 100, "total": 1000}})
	add(Case{Name: "lr_schedule warmup", Op: "lr_schedule", Ins: []ir.Type{scalarI}, Fill: []Fill{{"step", 57}},
		Attrs: ir.Attrs{"kind": "constant", "lr": 0.1, "warmup": 100, "total": 1000}})
	w := f32(1000, 37)
	for _, nest := range []bool{false, true} {
		add(Case{Name: fmt.Sprintf("sgd nesterov=%v", nest), Op: "sgd", Ins: []ir.Type{w, w, w, scalarF},
			Fill:  []Fill{{"normal", 1}, {"normal", 1}, {"normal", 1}, {Kind: "one"}},
			Attrs: ir.Attrs{"momentum": 0.9, "weight_decay": 1e-4, "nesterov": nest}})
	}
	add(Case{Name: "sgd in place", Op: "sgd", Ins: []ir.Type{w, w, w, scalarF}, Fill: []Fill{{"normal", 1}, {"normal", 1}, {"normal", 1}, {Kind: "one"}},
		Attrs: ir.Attrs{"momentum": 0.9}, Alias: map[int]int{0: 0, 1: 2}})
	add(Case{Name: "adamw", Op: "adamw", Ins: []ir.Type{w, w, w, w, scalarF, scalarI},
		Fill:  []Fill{{"normal", 1}, {"normal", 1}, {"normal", 0.1}, {Kind: "positive"}, {"normal", 0.01}, {"step", 41}},
		Attrs: ir.Attrs{"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}, Tol: 2e-6, Alias: map[int]int{0: 0, 1: 2, 2: 3}})
	for _, c := range extraCases() {
		add(c) // the default tolerance applies to them too
	}
	return cs
}

// extraCases are the cases of ops added after the base table (one file per
// family appends to it).
var extraCases = func() []Case { return nil }

// Plan makes a one-kernel plan: every input a program input, every output a
// program output (so a backend hands both back), buffers laid out one after
// another, 256-byte aligned.
func (c Case) Plan(target string) (*ir.Plan, error) {
	outs, err := ir.InferTypes(c.Op, c.Ins, c.Attrs)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", c.Name, err)
	}
	p := &ir.Plan{Format: ir.PlanFormat, Name: "case", Hash: "000000000000", Target: target, Buffers: []ir.Buffer{}, Inits: []ir.Init{}}
	var off int64
	buf := func(name string, t ir.Type, kind ir.BufferKind) int {
		id := len(p.Buffers)
		p.Buffers = append(p.Buffers, ir.Buffer{ID: id, Name: name, Type: t, Kind: kind, Offset: off, Bytes: t.Bytes()})
		off += (t.Bytes() + 255) / 256 * 256
		return id
	}
	pr := ir.Program{Name: "train", Inputs: []ir.Binding{}, Outputs: []ir.Binding{}}
	k := ir.Kernel{Name: "k0", Op: c.Op, Attrs: c.Attrs}
	if target == "cuda" {
		k.Launch = c.Launch
	}
	for i, t := range c.Ins {
		id := buf(fmt.Sprintf("in%d", i), t, ir.BufInput)
		k.Ins = append(k.Ins, id)
		pr.Inputs = append(pr.Inputs, ir.Binding{Name: fmt.Sprintf("in%d", i), Buffer: id})
	}
	for i, t := range outs {
		id := -1
		if j, ok := c.Alias[i]; ok {
			id = k.Ins[j]
		} else {
			id = buf(fmt.Sprintf("out%d", i), t, ir.BufTemp)
		}
		k.Outs = append(k.Outs, id)
		pr.Outputs = append(pr.Outputs, ir.Binding{Name: fmt.Sprintf("out%d", i), Buffer: id})
	}
	pr.Kernels = []ir.Kernel{k}
	p.Programs = []ir.Program{pr}
	p.Memory = ir.Memory{ArenaBytes: max(off, 256), InputBytes: off}
	return p, nil
}

// Fill draws the case's inputs into the views get returns (f32 or i32 per
// buffer), from seed.
func (c Case) FillInputs(seed uint64, f32 func(buf int) []float32, i32 func(buf int) []int32, plan *ir.Plan) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	k := plan.Programs[0].Kernels[0]
	for i, id := range k.Ins {
		fl := Fill{Kind: "normal", Arg: 1}
		if i < len(c.Fill) {
			fl = c.Fill[i]
		}
		if plan.Buffers[id].Type.DType == ir.I32 {
			v := i32(id)
			if fillOffsets(fl, r, v) {
				continue
			}
			for j := range v {
				switch fl.Kind {
				case "labels": // a few padding rows
					if r.IntN(10) == 0 {
						v[j] = -1
					} else {
						v[j] = int32(r.IntN(int(fl.Arg)))
					}
				case "step":
					v[j] = int32(fl.Arg)
				case "ramp": // offsets: j·Arg
					v[j] = int32(j) * int32(fl.Arg)
				default:
					v[j] = int32(r.IntN(100))
				}
			}
			continue
		}
		v := f32(id)
		if fillMask(fl, c.Attrs, plan.Buffers[id].Type.Shape, r, v) {
			continue
		}
		for j := range v {
			switch fl.Kind {
			case "positive": // away from 0: log, sqrt, a divisor, a second moment
				v[j] = float32(0.05 + math.Abs(r.NormFloat64()))
			case "one":
				v[j] = 1
			default:
				std := fl.Arg
				if std == 0 {
					std = 1
				}
				v[j] = float32(r.NormFloat64() * std)
			}
		}
	}
}

// RelErr is ‖got − want‖ / ‖want‖ (‖got − want‖ when want is 0).
func RelErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		n += float64(want[i]) * float64(want[i])
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}
