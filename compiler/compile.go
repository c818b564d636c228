// Package compiler turns a resolved spec into the graph IR of its training
// step (forward, reverse-mode backward, optimizer update, LR schedule) and
// its evaluation step, plus the plan header the lowering passes fill in.
package compiler

import (
	"encoding/json"
	"path/filepath"

	"github.com/expc-dev/expc/diag"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// Version is the compiler version; it is part of every plan hash.
const Version = "0.1.0"

// DataShape is what the compiler needs to know about the data, read from
// metadata without loading it.
type DataShape struct {
	Features, Classes int
	TrainN, EvalN     int
}

// Input is one compilation request.
type Input struct {
	Exp     *schema.Experiment
	SpecDir string // directory of the spec, for relative dataset paths
	Data    DataShape
	Target  string // backend name
	Options ir.Options
}

// Compile builds the module and the plan header. User errors are positioned
// diagnostics; a panic inside is turned into an internal error by the caller.
func Compile(in Input) (*ir.Module, *ir.Plan, diag.List) {
	c := &compiler{in: in, exp: in.Exp, src: in.Exp.Source}
	if diags := c.check(); diags.HasErrors() {
		return nil, nil, diags
	}
	mod := &ir.Module{Name: c.exp.Name}
	mod.Funcs = append(mod.Funcs, c.trainFunc(), c.evalFunc())
	if f := c.maskFunc(); f != nil {
		mod.Funcs = append(mod.Funcs, f)
	}
	if len(c.diags) > 0 {
		return nil, nil, c.diags
	}
	plan, err := c.planHeader()
	if err != nil {
		return nil, nil, diag.List{diag.Errorf(c.pos(""), "", "E-INTERNAL", "%v", err)}
	}
	if c.contrastive() {
		c.contrastiveHeader(plan)
	}
	return mod, plan, nil
}

type compiler struct {
	in    Input
	exp   *schema.Experiment
	src   *schema.SourceMap
	diags diag.List
	sp    *sparsity // method.sparsity, resolved by check; nil without one
}

func (c *compiler) pos(path string) diag.Range { return c.src.Pos(path) }

func (c *compiler) loc(path string) ir.Loc {
	r := c.pos(path)
	return ir.Loc{File: r.File, Line: r.Start.Line, Col: r.Start.Col}
}

func (c *compiler) errorf(path, code, format string, args ...any) {
	c.diags = append(c.diags, diag.Errorf(c.pos(path), path, code, format, args...))
}

// steps is the number of training steps the schedule runs.
func (c *compiler) steps() int {
	if c.exp.Train.Steps > 0 {
		return c.exp.Train.Steps
	}
	return c.exp.Train.Epochs * c.stepsPerEpoch()
}

func (c *compiler) stepsPerEpoch() int {
	n := c.in.Data.TrainN / c.exp.Dataset.Batch
	if n < 1 {
		n = 1
	}
	return n
}

func (c *compiler) evalBatch() int {
	if c.exp.Dataset.EvalBatch > 0 {
		return c.exp.Dataset.EvalBatch
	}
	return c.exp.Dataset.Batch
}

// trainFunc is forward + loss + backward + optimizer update.
func (c *compiler) trainFunc() *ir.Func {
	if c.contrastive() {
		return c.contrastiveTrainFunc()
	}
	if c.moeModel() {
		return c.moeTrainFunc()
	}
	f := &ir.Func{Name: "train"}
	b := ir.NewBuilder(f)
	batch, feat := c.exp.Dataset.Batch, c.in.Data.Features
	b.Loc = c.loc("dataset")
	x := b.Param("x", ir.Tensor(ir.F32, batch, feat), ir.RoleInput)
	y := b.Param("y", ir.Tensor(ir.I32, batch), ir.RoleInput)
	step := b.Param("step", ir.Scalar(ir.I32), ir.RoleInput)
	m := c.model(b)
	logits := m.forward(b, x)
	b.Loc = c.loc("loss")
	loss := c.lossValue(b, logits, y, true)
	grads, err := Grad(b, loss, m.params)
	if err != nil {
		c.errorf("model", "E-COMPILE-GRAD", "cannot differentiate the model: %v", err)
		return f
	}
	lr := c.optimize(b, m.params, grads, step)
	f.Outputs = append([]ir.Output{{Name: "loss", Value: loss}, {Name: "lr", Value: lr}}, f.Outputs...)
	return f
}

// evalFunc is forward + plain loss (no smoothing or z-loss) + correct count.
func (c *compiler) evalFunc() *ir.Func {
	if c.contrastive() {
		return c.contrastiveEvalFunc()
	}
	if c.moeModel() {
		return c.moeEvalFunc()
	}
	f := &ir.Func{Name: "eval"}
	b := ir.NewBuilder(f)
	batch, feat := c.evalBatch(), c.in.Data.Features
	b.Loc = c.loc("dataset")
	x := b.Param("x", ir.Tensor(ir.F32, batch, feat), ir.RoleInput)
	y := b.Param("y", ir.Tensor(ir.I32, batch), ir.RoleInput)
	m := c.model(b)
	logits := m.forward(b, x)
	b.Loc = c.loc("loss")
	loss := c.lossValue(b, logits, y, false)
	correct := b.V("count_correct", nil, "correct", logits, y)
	f.Outputs = []ir.Output{{Name: "loss", Value: loss}, {Name: "correct", Value: correct}}
	return f
}

func (c *compiler) lossValue(b *ir.Builder, logits, y *ir.Value, training bool) *ir.Value {
	l := c.exp.Loss
	attrs := ir.Attrs{}
	if training {
		if l.LabelSmoothing != 0 {
			attrs["label_smoothing"] = l.LabelSmoothing
		}
		if l.ZLoss != 0 {
			attrs["z_loss"] = l.ZLoss
		}
	}
	return b.V("softmax_xent", attrs, "loss", logits, y)
}

// planHeader fills what the passes do not: spec, data and schedule.
func (c *compiler) planHeader() (*ir.Plan, error) {
	spec, err := json.Marshal(c.exp)
	if err != nil {
		return nil, err
	}
	ds, err := json.Marshal(c.exp.Dataset)
	if err != nil {
		return nil, err
	}
	o := c.exp.Optimizer
	evalEvery := c.exp.Train.EvalEvery
	if evalEvery == 0 {
		evalEvery = c.stepsPerEpoch()
	}
	return &ir.Plan{
		Format:   ir.PlanFormat,
		Name:     c.exp.Name,
		Compiler: Version,
		Target:   c.in.Target,
		Options:  c.in.Options,
		Spec:     spec,
		Data: ir.DataPlan{
			Dataset: ds, SpecDir: filepath.ToSlash(c.in.SpecDir),
			Features: c.in.Data.Features, Classes: c.in.Data.Classes,
			TrainN: c.in.Data.TrainN, EvalN: c.in.Data.EvalN,
			Batch: c.exp.Dataset.Batch, EvalBatch: c.evalBatch(), Shuffle: c.exp.Dataset.Shuffle,
		},
		Schedule: ir.Schedule{
			Steps: c.steps(), StepsPerEpoch: c.stepsPerEpoch(),
			EvalEvery: evalEvery, LogEvery: c.exp.Train.LogEvery, Seed: c.exp.Train.Seed,
			LR: ir.LRSchedule{Kind: o.Schedule.Kind, LR: o.LR, MinLR: o.Schedule.MinLR,
				Warmup: o.Schedule.WarmupSteps, Total: c.steps()},
			Masks: c.maskSchedule(),
		},
	}, nil
}
