package compiler

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// Contrastive training (loss.kind: "contrastive"). The train program takes
// the views of a batch of N examples as rows: x[2N, F] (view one of every
// example, then view two) for nt_xent, decoupled and supcon; x[N, F] and
// x2[N, F] for dual_infonce. y[rows] are the labels (supcon's positives);
// ids[rows], with a learnable temperature, the examples' dataset indices.
// The model is an encoder (the mlp's hidden layers, activation after each)
// and a projection head; the loss is built from the unfused ops of
// ir/optable_contrastive.go so that autodiff gives its backward, and the
// pass fuse-contrastive turns both into one tiled kernel.
//
// The eval program maps x[eval_batch, F] to the encoder's features and the
// normalised projection ("features", "embedding"): the runner fits the
// linear probe and the kNN classifier on them.

func (c *compiler) contrastive() bool { return c.exp.Loss.Kind == "contrastive" }

func (c *compiler) dualObjective() bool { return c.exp.Loss.Objective == "dual_infonce" }

// contrastiveRows is the number of rows of the train program's x.
func (c *compiler) contrastiveRows() int {
	if c.dualObjective() {
		return c.exp.Dataset.Batch
	}
	return 2 * c.exp.Dataset.Batch
}

func (c *compiler) projection() []int {
	if p := c.exp.Model.Projection; len(p) > 0 {
		return p
	}
	return []int{128}
}

// checkContrastive: combinations the schema cannot rule out.
func (c *compiler) checkContrastive() {
	l := c.exp.Loss
	if c.exp.Model.Kind != "mlp" {
		c.errorf("model.kind", "E-COMPILE-MODEL", "contrastive training needs an mlp encoder, not %q", c.exp.Model.Kind)
	}
	if c.exp.Dataset.Views == nil {
		c.errorf("dataset", "E-COMPILE-DATA", "contrastive training needs dataset.views")
	}
	if c.exp.Dataset.Batch < 2 {
		c.errorf("dataset.batch", "E-COMPILE-BATCH", "contrastive training needs a batch of at least 2 examples, got %d", c.exp.Dataset.Batch)
	}
	neg, tau := l.Negatives, l.Temperature
	if neg != nil && neg.Kind != "in_batch" && l.Objective == "supcon" {
		c.errorf("loss.negatives.kind", "E-COMPILE-LOSS", "supcon treats every other view of a class as a positive; %s negatives need one positive per anchor (nt_xent, decoupled or dual_infonce)", neg.Kind)
	}
	if neg != nil && neg.Kind == "hard" && neg.K >= c.contrastiveRows()-1 {
		c.errorf("loss.negatives.k", "E-COMPILE-LOSS", "k = %d hard negatives leaves nothing to mine: a batch has %d negatives per anchor", neg.K, c.contrastiveRows()-2)
	}
	if tau != nil && tau.Kind == "learnable" && c.dualObjective() {
		c.errorf("loss.temperature.kind", "E-COMPILE-LOSS", "a learnable per-example temperature needs the 2N-view objectives (nt_xent, decoupled, supcon)")
	}
	if (l.Towers == "separate" || l.Symmetric) && !c.dualObjective() {
		c.errorf("loss.objective", "E-COMPILE-LOSS", "towers and symmetric apply to dual_infonce only")
	}
}

// encoder is an mlp encoder with its projection head.
type encoder struct {
	params  []*ir.Value
	feat    int
	encode  func(b *ir.Builder, x *ir.Value) *ir.Value // x -> features
	project func(b *ir.Builder, h *ir.Value) *ir.Value // features -> projection
}

// buildEncoder declares the parameters of one tower; prefix names them
// ("" for a shared tower, "a." and "b." for two).
func (c *compiler) buildEncoder(b *ir.Builder, prefix string) encoder {
	spec := c.exp.Model
	act := spec.Activation
	if act == "" {
		act = "relu"
	}
	init := "he_normal"
	if spec.Init == "xavier" || (spec.Init == "" && (act == "tanh" || act == "sigmoid")) {
		init = "xavier_uniform"
	}
	type layer struct {
		w, bias *ir.Value
		name    string
		loc     ir.Loc
	}
	var enc, head []layer
	var params []*ir.Value
	declare := func(name, path string, in, out int) layer {
		b.Loc = c.loc(path)
		w := b.Param(prefix+name+".w", ir.Tensor(ir.F32, in, out), ir.RoleParam)
		w.Init = init
		bias := b.Param(prefix+name+".b", ir.Tensor(ir.F32, out), ir.RoleParam)
		bias.Init = "zeros"
		params = append(params, w, bias)
		return layer{w, bias, prefix + name, b.Loc}
	}
	width := c.in.Data.Features
	for i, h := range spec.Hidden {
		enc = append(enc, declare(fmt.Sprintf("fc%d", i+1), fmt.Sprintf("model.hidden[%d]", i), width, h))
		width = h
	}
	feat := width
	proj := c.projection()
	for i, p := range proj {
		head = append(head, declare(fmt.Sprintf("proj%d", i+1), fmt.Sprintf("model.projection[%d]", i), width, p))
		width = p
	}
	apply := func(b *ir.Builder, h *ir.Value, layers []layer, lastAct bool) *ir.Value {
		for i, l := range layers {
			b.Loc = l.loc
			z := b.V("bias_add", nil, l.name+".z", b.V("matmul", nil, l.name+".mm", h, l.w), l.bias)
			if i == len(layers)-1 && !lastAct {
				return z
			}
			h = b.V(act, nil, l.name+".h", z)
		}
		return h
	}
	return encoder{params: params, feat: feat,
		encode:  func(b *ir.Builder, x *ir.Value) *ir.Value { return apply(b, x, enc, true) },
		project: func(b *ir.Builder, h *ir.Value) *ir.Value { return apply(b, h, head, false) }}
}

// contrastiveTrainFunc is forward, loss, backward and update.
func (c *compiler) contrastiveTrainFunc() *ir.Func {
	f := &ir.Func{Name: "train"}
	b := ir.NewBuilder(f)
	rows, feat := c.contrastiveRows(), c.in.Data.Features
	b.Loc = c.loc("dataset")
	x := b.Param("x", ir.Tensor(ir.F32, rows, feat), ir.RoleInput)
	var x2 *ir.Value
	if c.dualObjective() {
		x2 = b.Param("x2", ir.Tensor(ir.F32, rows, feat), ir.RoleInput)
	}
	y := b.Param("y", ir.Tensor(ir.I32, rows), ir.RoleInput)
	step := b.Param("step", ir.Scalar(ir.I32), ir.RoleInput)
	tau := c.exp.Loss.Temperature
	learnable := tau != nil && tau.Kind == "learnable"
	var ids *ir.Value
	if learnable {
		b.Loc = c.loc("loss.temperature")
		ids = b.Param("ids", ir.Tensor(ir.I32, rows), ir.RoleInput)
	}
	var ea, eb encoder
	var params []*ir.Value
	if c.exp.Loss.Towers == "separate" {
		ea, eb = c.buildEncoder(b, "a."), c.buildEncoder(b, "b.")
		params = append(append(params, ea.params...), eb.params...)
	} else {
		ea = c.buildEncoder(b, "")
		eb, params = ea, append(params, ea.params...)
	}
	var table *ir.Value
	if learnable {
		b.Loc = c.loc("loss.temperature")
		table = b.Param("tau.logit", ir.Tensor(ir.F32, c.in.Data.TrainN), ir.RoleParam)
		table.Init = "zeros"
		params = append(params, table)
	}
	var guideW *ir.Value
	if n := c.exp.Loss.Negatives; n != nil && n.Kind == "guided" && n.Guide == "random_projection" {
		b.Loc = c.loc("loss.negatives")
		guideW = b.Param("guide.w", ir.Tensor(ir.F32, feat, max(n.Dim, 1)), ir.RoleParam) // frozen: never updated
		guideW.Init = "he_normal"
	}

	pa := ea.project(b, ea.encode(b, x))
	var pb *ir.Value
	if x2 != nil {
		pb = eb.project(b, eb.encode(b, x2))
	}
	invTau := c.inverseTemperature(b, step, ids, table, rows)
	b.Loc = c.loc("loss")
	loss := c.contrastiveLoss(b, pa, pb, x, x2, y, invTau, guideW)
	grads, err := Grad(b, loss, params)
	if err != nil {
		c.errorf("model", "E-COMPILE-GRAD", "cannot differentiate the model: %v", err)
		return f
	}
	lr := c.optimize(b, params, grads, step)
	f.Outputs = append([]ir.Output{{Name: "loss", Value: loss}, {Name: "lr", Value: lr}}, f.Outputs...)
	return f
}

// inverseTemperature returns 1/τ as an f32[] or f32[rows] value, or nil for
// a fixed τ (a scale factor).
//
//	scheduled: τ(step) = cosine from value to end (lr_schedule)
//	learnable: τ_i = min + (max − min)·σ(θ[id_i] + θ0), θ0 = logit of value
func (c *compiler) inverseTemperature(b *ir.Builder, step, ids, table *ir.Value, rows int) *ir.Value {
	t := c.exp.Loss.Temperature
	if t == nil || t.Kind == "fixed" || t.Kind == "" {
		return nil
	}
	b.Loc = c.loc("loss.temperature")
	fill := func(v float64, shape ...int) *ir.Value {
		return b.V("fill", ir.Attrs{"value": v, "shape": append([]int{}, shape...)}, "tau.const")
	}
	if t.Kind == "scheduled" {
		tau := b.V("lr_schedule", ir.Attrs{"kind": "cosine", "lr": t.Value, "min_lr": t.End, "warmup": 0, "total": c.steps()}, "tau", step)
		return b.V("div", nil, "invtau", fill(1), tau)
	}
	u := (t.Value - t.Min) / (t.Max - t.Min)
	theta := b.V("add", nil, "tau.logit.i", b.V("gather", nil, "tau.logit.i", table, ids), fill(math.Log(u/(1-u)), rows))
	tau := b.V("add", nil, "tau", b.V("scale", ir.Attrs{"factor": t.Max - t.Min}, "tau", b.V("sigmoid", nil, "tau", theta)), fill(t.Min, rows))
	return b.V("div", nil, "invtau", fill(1, rows), tau)
}

// contrastiveLoss emits the unfused loss: normalise, similarities,
// temperature, mask, soft cross-entropy (both directions for a symmetric
// dual loss).
func (c *compiler) contrastiveLoss(b *ir.Builder, pa, pb, x, x2, y, invTau, guideW *ir.Value) *ir.Value {
	l := c.exp.Loss
	za := b.V("l2_normalize", nil, "z", pa)
	zb := za
	if pb != nil {
		zb = b.V("l2_normalize", nil, "z.b", pb)
	}
	var ga, gb *ir.Value
	if n := l.Negatives; n != nil && n.Kind == "guided" {
		b.Loc = c.loc("loss.negatives")
		guide := func(x *ir.Value) *ir.Value {
			if guideW != nil {
				x = b.V("matmul", nil, "guide.mm", x, guideW)
			}
			return b.V("l2_normalize", nil, "guide", x)
		}
		ga = guide(x)
		gb = ga
		if x2 != nil {
			gb = guide(x2)
		}
		b.Loc = c.loc("loss")
	}
	opts := LossOptions{Objective: l.Objective, InvTemperature: 2, Classes: c.in.Data.Classes}
	if l.Temperature != nil {
		opts.InvTemperature = 1 / l.Temperature.Value
	}
	if n := l.Negatives; n != nil && n.Kind == "hard" {
		opts.HardK = n.K
	}
	direction := func(za, zb, ga, gb *ir.Value) *ir.Value {
		return EmitContrastiveLoss(b, opts, za, zb, ga, gb, y, invTau)
	}
	loss := direction(za, zb, ga, gb)
	if l.Symmetric && pb != nil {
		back := direction(zb, za, gb, ga)
		loss = b.V("scale", ir.Attrs{"factor": 0.5}, "loss", b.V("add", nil, "loss", loss, back))
	}
	return loss
}

// contrastiveEvalFunc maps inputs to features and normalised embeddings.
func (c *compiler) contrastiveEvalFunc() *ir.Func {
	f := &ir.Func{Name: "eval"}
	b := ir.NewBuilder(f)
	b.Loc = c.loc("dataset")
	x := b.Param("x", ir.Tensor(ir.F32, c.evalBatch(), c.in.Data.Features), ir.RoleInput)
	prefix := ""
	if c.exp.Loss.Towers == "separate" {
		prefix = "a."
	}
	e := c.buildEncoder(b, prefix)
	h := e.encode(b, x)
	b.Loc = c.loc("loss.probe")
	z := b.V("l2_normalize", nil, "embedding", e.project(b, h))
	f.Outputs = []ir.Output{{Name: "features", Value: h}, {Name: "embedding", Value: z}}
	return f
}

// contrastiveHeader fills the plan's contrastive section and evaluates only
// at the end unless train.eval_every asks for more (a probe fits a
// classifier on the whole training set).
func (c *compiler) contrastiveHeader(p *ir.Plan) {
	l := c.exp.Loss
	probe := schema.Probe{Kind: "linear", Epochs: 30, LR: 0.5, K: 20}
	if l.Probe != nil {
		probe = *l.Probe
	}
	tau := c.exp.Loss.Temperature
	p.Contrastive = &ir.ContrastivePlan{
		Objective: l.Objective, Rows: c.contrastiveRows(), Dual: c.dualObjective(),
		IDs:      tau != nil && tau.Kind == "learnable",
		Features: c.exp.Model.Hidden[len(c.exp.Model.Hidden)-1], Embedding: c.projection()[len(c.projection())-1],
		Probe: ir.ProbePlan{Kind: probe.Kind, Epochs: probe.Epochs, LR: probe.LR, K: probe.K},
	}
	if c.exp.Train.EvalEvery == 0 {
		p.Schedule.EvalEvery = p.Schedule.Steps
	}
}

// LossOptions configure EmitContrastiveLoss.
type LossOptions struct {
	Objective      string  // nt_xent | decoupled | supcon | dual_infonce (or dual)
	InvTemperature float64 // 1/τ when no inverse-temperature value is given
	HardK          int     // hard negatives per anchor (0: all)
	Classes        int     // supcon: labels are in [0, Classes)
}

// EmitContrastiveLoss emits the unfused loss of rows za against rows zb
// (unit rows; za == zb for the 2N-view objectives): similarities,
// temperature (a scale by InvTemperature, or row_scale by invTau, f32[] or
// f32[rows]), the mask (labels y for supcon; the guide's unit rows ga, gb
// when not nil) and the soft cross-entropy. It returns the scalar loss.
func EmitContrastiveLoss(b *ir.Builder, o LossOptions, za, zb, ga, gb, y, invTau *ir.Value) *ir.Value {
	s := b.V("matmul", ir.Attrs{"transpose_b": true}, "sim", za, zb)
	var logits *ir.Value
	if invTau == nil {
		logits = b.V("scale", ir.Attrs{"factor": o.InvTemperature}, "logits", s)
	} else {
		logits = b.V("row_scale", nil, "logits", s, invTau)
	}
	obj := o.Objective
	if obj == "dual_infonce" {
		obj = "dual"
	}
	attrs := ir.Attrs{"objective": obj}
	args := []*ir.Value{s}
	if obj == "supcon" {
		attrs["classes"] = o.Classes
		args = append(args, y)
	}
	if o.HardK > 0 {
		attrs["hard_k"] = o.HardK
	}
	if ga != nil {
		attrs["guided"] = true
		args = append(args, b.V("matmul", ir.Attrs{"transpose_b": true}, "guide.sim", ga, gb))
	}
	m := b.Must("contrastive_mask", args, attrs, "mask", "positives")
	return b.V("soft_xent", nil, "loss", logits, m.Results[0], m.Results[1])
}
