package compiler

import (
	"fmt"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// Models with mixture-of-experts layers, and the sequence model they run
// in: an MLP with MoE layers (model.kind "mlp" with model.moe), the
// Gaussian MoE regression head ("gaussian_moe") and a small decoder-only
// transformer ("transformer", optionally with MoE feed-forward layers).
// Their objectives differ from the plain classifier's (auxiliary losses,
// a mixture likelihood, next-token targets read from the inputs), so they
// build whole train and eval functions: moeTrainFunc and moeEvalFunc.

func init() {
	// The kinds exist for check(); trainFunc and evalFunc hand them to
	// moeTrainFunc and moeEvalFunc before any builder is looked up.
	modelBuilders["transformer"] = nil
	modelBuilders["gaussian_moe"] = nil
}

// moeModel reports whether this compiler builds the step with moeTrainFunc.
func (c *compiler) moeModel() bool {
	m := c.exp.Model
	return m.Kind == "transformer" || m.Kind == "gaussian_moe" || (m.Kind == "mlp" && m.MoE != nil)
}

// net is one function's network: its parameters and the values the step
// needs. correct is nil where accuracy has no meaning (regression).
type net struct {
	params        []*ir.Value
	loss, correct *ir.Value
	aux           []*ir.Value // auxiliary losses (training)
	metrics       []ir.Output
}

// moeNet builds the network for a function over a batch of rows.
func (c *compiler) moeNet(b *ir.Builder, x, y, step *ir.Value, rows int, training bool) *net {
	switch c.exp.Model.Kind {
	case "transformer":
		return c.transformerNet(b, x, y, step, rows, training)
	case "gaussian_moe":
		return c.gaussianMoENet(b, x, y, step, rows, training)
	}
	return c.moeMLPNet(b, x, y, step, rows, training)
}

func (c *compiler) moeTrainFunc() *ir.Func {
	f := &ir.Func{Name: "train"}
	b := ir.NewBuilder(f)
	batch, feat := c.exp.Dataset.Batch, c.in.Data.Features
	b.Loc = c.loc("dataset")
	x := b.Param("x", ir.Tensor(ir.F32, batch, feat), ir.RoleInput)
	y := b.Param("y", ir.Tensor(ir.I32, batch), ir.RoleInput)
	step := b.Param("step", ir.Scalar(ir.I32), ir.RoleInput)
	n := c.moeNet(b, x, y, step, batch, true)
	loss := n.loss
	for _, a := range n.aux {
		b.Loc = a.Def.Loc
		loss = b.V("add", nil, "loss.total", loss, a)
	}
	grads, err := Grad(b, loss, n.params)
	if err != nil {
		c.errorf("model", "E-COMPILE-GRAD", "cannot differentiate the model: %v", err)
		return f
	}
	lr := c.optimize(b, n.params, grads, step)
	f.Outputs = append(append([]ir.Output{{Name: "loss", Value: loss}, {Name: "lr", Value: lr}}, f.Outputs...), n.metrics...)
	return f
}

func (c *compiler) moeEvalFunc() *ir.Func {
	f := &ir.Func{Name: "eval"}
	b := ir.NewBuilder(f)
	batch, feat := c.evalBatch(), c.in.Data.Features
	b.Loc = c.loc("dataset")
	x := b.Param("x", ir.Tensor(ir.F32, batch, feat), ir.RoleInput)
	y := b.Param("y", ir.Tensor(ir.I32, batch), ir.RoleInput)
	n := c.moeNet(b, x, y, nil, batch, false)
	f.Outputs = []ir.Output{{Name: "loss", Value: n.loss}}
	if n.correct != nil { // a regression model (gaussian_moe) has no accuracy
		f.Outputs = append(f.Outputs, ir.Output{Name: "correct", Value: n.correct})
	}
	return f
}

// moeLayerFor builds layer name over tokens rows of the given width from
// the spec's moe block.
func (c *compiler) moeLayerFor(b *ir.Builder, name string, width, tokens int) *moeLayer {
	s := *c.exp.Model.MoE
	b.Loc = c.loc("model.moe")
	return newMoELayer(b, MoEConfig{Name: name, Width: width, Tokens: tokens, Spec: s,
		Capacity: MoECapacity(tokens, s.Experts, s.TopK, s.CapacityFactor)})
}

// runMoE emits a layer's forward pass and records its aux loss and metrics.
func (n *net) runMoE(c *compiler, b *ir.Builder, l *moeLayer, x, tau *ir.Value, training bool) *ir.Value {
	b.Loc = c.loc("model.moe")
	y, out := l.forward(b, x, tau, training)
	if out.aux != nil {
		n.aux = append(n.aux, out.aux)
	}
	if training {
		n.metrics = append(n.metrics,
			ir.Output{Name: "metrics." + l.cfg.Name + ".load", Value: out.load},
			ir.Output{Name: "metrics." + l.cfg.Name + ".dropped", Value: out.dropped})
	}
	return y
}

// moeMLPNet: the MLP (fc1..fcN with the activation between them) with an
// MoE layer after each hidden layer listed in moe.layers.
func (c *compiler) moeMLPNet(b *ir.Builder, x, y, step *ir.Value, rows int, training bool) *net {
	spec := c.exp.Model
	widths := append(append([]int{c.in.Data.Features}, spec.Hidden...), c.in.Data.Classes)
	act, init := mlpActivation(spec)
	n := &net{}
	tau := c.moeTemperature(b, *spec.MoE, "model.moe", step)
	h := x
	for i := 0; i+1 < len(widths); i++ {
		name, w, bias := c.denseLayer(b, widths, i, init)
		n.params = append(n.params, w, bias)
		z := b.V("matmul", nil, name+".mm", h, w)
		if i == len(widths)-2 {
			h = b.V("bias_add", nil, "logits", z, bias)
			break
		}
		z = b.V("bias_add", nil, name+".z", z, bias)
		h = b.V(act, nil, name+".h", z)
		if slices.Contains(spec.MoE.Layers, i+1) {
			l := c.moeLayerFor(b, fmt.Sprintf("moe%d", i+1), widths[i+1], rows)
			n.params = append(n.params, l.params()...)
			h = n.runMoE(c, b, l, h, tau, training)
		}
	}
	b.Loc = c.loc("loss")
	n.loss = c.lossValue(b, h, y, training)
	if !training {
		n.correct = b.V("count_correct", nil, "correct", h, y)
	}
	return n
}

// gaussianMoENet is the Gaussian mixture-of-experts regression head on
// x = [inputs, target]: p(t | x) = Σ_e G_e(x)·N(t; a_eᵀx + c_e, exp(v_e)),
// G the gate over the router logits, each expert a linear mean and a
// learned log-variance v_e; the loss is the mean negative log-likelihood.
func (c *compiler) gaussianMoENet(b *ir.Builder, x, y, step *ir.Value, rows int, training bool) *net {
	s := *c.exp.Model.MoE
	d := c.in.Data.Features - 1
	b.Loc = c.loc("model")
	router := b.Param("router.w", ir.Tensor(ir.F32, d, s.Experts), ir.RoleParam)
	router.Init = "xavier_uniform"
	routerB := b.Param("router.b", ir.Tensor(ir.F32, s.Experts), ir.RoleParam)
	routerB.Init = "zeros"
	means := b.Param("experts.w", ir.Tensor(ir.F32, d, s.Experts), ir.RoleParam)
	means.Init = "xavier_uniform"
	meansB := b.Param("experts.b", ir.Tensor(ir.F32, s.Experts), ir.RoleParam)
	meansB.Init = "zeros"
	logVar := b.Param("experts.logvar", ir.Tensor(ir.F32, s.Experts), ir.RoleParam)
	logVar.Init = "zeros"
	n := &net{params: []*ir.Value{router, routerB, means, meansB, logVar}}
	tau := c.moeTemperature(b, s, "model.moe", step)
	b.Loc = c.loc("dataset")
	in := b.V("slice_cols", ir.Attrs{"start": 0, "end": d}, "inputs", x)
	target := b.V("slice_cols", ir.Attrs{"start": d, "end": d + 1}, "target", x)
	b.Loc = c.loc("model.moe")
	h := b.V("matmul", nil, "router.mm", in, router)
	h = b.V("bias_add", nil, "logits", h, routerB)
	g := b.V("moe_gate", MoEGateAttrs(s), "gate", h, tau)
	b.Loc = c.loc("model")
	mu := b.V("matmul", nil, "experts.mm", in, means)
	mu = b.V("bias_add", nil, "means", mu, meansB)
	b.Loc = c.loc("loss")
	n.loss = b.V("mixture_nll", nil, "loss", g, mu, logVar, target, y)
	if training {
		b.Loc = c.loc("model.moe")
		if s.LoadBalance != 0 || s.ZLoss != 0 {
			aa := routerAttrs(s)
			if s.LoadBalance != 0 {
				aa["load_balance"] = s.LoadBalance
			}
			if s.ZLoss != 0 {
				aa["z_loss"] = s.ZLoss
			}
			n.aux = append(n.aux, b.V("moe_aux", aa, "moe.aux", h, tau))
		}
		sa := routerAttrs(s)
		sa["capacity"] = rows
		st := b.Must("moe_stats", []*ir.Value{h}, sa, "moe.load", "moe.dropped")
		n.metrics = append(n.metrics, ir.Output{Name: "metrics.moe.load", Value: st.Results[0]})
	}
	return n
}

// transformerNet: token and position embeddings, pre-norm blocks
// (x + attention(LN(x)), then x + FFN(LN(x)) with an MoE FFN in the blocks
// listed in moe.layers), a final LN and the vocabulary projection; the
// next-token loss over every position.
func (c *compiler) transformerNet(b *ir.Builder, x, y, step *ir.Value, rows int, training bool) *net {
	m := c.exp.Model
	T, V, D := c.in.Data.Features-1, c.in.Data.Classes, m.DModel
	tokens := rows * T
	n := &net{}
	param := func(name, init string, dims ...int) *ir.Value {
		p := b.Param(name, ir.Tensor(ir.F32, dims...), ir.RoleParam)
		p.Init = init
		n.params = append(n.params, p)
		return p
	}
	// Layer norm gains are 1 + g with g trained from 0.
	ones := func() *ir.Value { return b.V("fill", ir.Attrs{"value": 1.0, "shape": []int{D}}, "ones") }
	norm := func(name string, h *ir.Value) *ir.Value {
		g := param(name+".g", "zeros", D)
		bias := param(name+".b", "zeros", D)
		gain := b.V("add", nil, name+".gain", ones(), g)
		return b.V("layer_norm", nil, name, h, gain, bias)
	}
	linear := func(name string, h *ir.Value, in, out int) *ir.Value {
		w := param(name+".w", "xavier_uniform", in, out)
		bias := param(name+".b", "zeros", out)
		return b.V("bias_add", nil, name, b.V("matmul", nil, name+".mm", h, w), bias)
	}
	var tau *ir.Value
	if m.MoE != nil {
		tau = c.moeTemperature(b, *m.MoE, "model.moe", step)
	}
	b.Loc = c.loc("dataset")
	ids := b.V("token_ids", nil, "ids", x)
	targets := b.V("token_ids", ir.Attrs{"shift": 1}, "targets", x, y)
	b.Loc = c.loc("model.d_model")
	h := b.V("embed", nil, "embed", ids, param("tok.emb", "he_normal", V, D), param("pos.emb", "he_normal", T, D))
	for l := 1; l <= m.Layers; l++ {
		blk := fmt.Sprintf("blk%d", l)
		b.Loc = c.loc("model.layers")
		a := norm(blk+".ln1", h)
		q, k, v := linear(blk+".q", a, D, D), linear(blk+".k", a, D, D), linear(blk+".v", a, D, D)
		b.Loc = c.loc("model.heads")
		o := b.V("attention", ir.Attrs{"heads": m.Heads, "seq": T, "causal": m.Causal}, blk+".attn", q, k, v)
		b.Loc = c.loc("model.layers")
		h = b.V("add", nil, blk+".res1", h, linear(blk+".o", o, D, D))
		a = norm(blk+".ln2", h)
		var f *ir.Value
		if m.MoE != nil && slices.Contains(m.MoE.Layers, l) {
			ml := c.moeLayerFor(b, fmt.Sprintf("moe%d", l), D, tokens)
			n.params = append(n.params, ml.params()...)
			f = n.runMoE(c, b, ml, a, tau, training)
		} else {
			b.Loc = c.loc("model.ffn")
			f = linear(blk+".ffn2", b.V("relu", nil, blk+".ffn.h", linear(blk+".ffn1", a, D, m.FFN)), m.FFN, D)
		}
		b.Loc = c.loc("model.layers")
		h = b.V("add", nil, blk+".res2", h, f)
	}
	b.Loc = c.loc("model")
	logits := linear("out", norm("ln", h), D, V)
	b.Loc = c.loc("loss")
	n.loss = c.lossValue(b, logits, targets, training)
	if !training {
		cc := b.V("count_correct", nil, "correct.tokens", logits, targets)
		n.correct = b.V("scale", ir.Attrs{"factor": 1 / float64(T)}, "correct", cc)
	}
	return n
}

// checkMoE is check() for these models: what CUE cannot say about them.
func (c *compiler) checkMoE() {
	e := c.exp
	m, ds := e.Model, e.Dataset
	switch {
	case m.Kind == "transformer" && ds.Name != "tokens":
		c.errorf("dataset.name", "E-COMPILE-DATA", "a transformer reads token streams: dataset.name must be \"tokens\", not %q", ds.Name)
	case m.Kind != "transformer" && ds.Name == "tokens":
		c.errorf("model.kind", "E-COMPILE-MODEL", "dataset \"tokens\" holds token streams: model.kind must be \"transformer\", not %q", m.Kind)
	case m.Kind == "gaussian_moe" && ds.Name != "mixture_regression":
		c.errorf("dataset.name", "E-COMPILE-DATA", "a gaussian_moe head regresses the last column of dataset \"mixture_regression\", not of %q", ds.Name)
	case (m.Kind == "gaussian_moe") != (e.Loss.Kind == "mixture_nll"):
		if m.Kind == "gaussian_moe" {
			c.errorf("loss.kind", "E-COMPILE-LOSS", "a gaussian_moe model is trained by its likelihood: set loss.kind to \"mixture_nll\"")
		} else {
			c.errorf("loss.kind", "E-COMPILE-LOSS", "loss \"mixture_nll\" needs model.kind \"gaussian_moe\"")
		}
	}
	if !c.moeModel() {
		return
	}
	if e.Loss.Kind == "contrastive" {
		c.errorf("loss.kind", "E-COMPILE-LOSS", "contrastive losses are not supported with mixture-of-experts or sequence models yet")
	}
	if e.Method != nil && e.Method.Sparsity != nil {
		c.errorf("method.sparsity", "E-COMPILE-METHOD", "weight masks are not supported with mixture-of-experts or sequence models yet")
	}
	if m.Kind == "transformer" && m.DModel%m.Heads != 0 {
		c.errorf("model.heads", "E-COMPILE-SIZE", "%d heads do not divide d_model = %d", m.Heads, m.DModel)
	}
	if m.MoE == nil {
		return
	}
	if sc := m.MoE.TemperatureSchedule; sc != nil && sc.Steps > c.steps() {
		c.errorf("model.moe.temperature_schedule.steps", "E-COMPILE-SCHEDULE", "the temperature anneals over %d steps, longer than the %d training steps", sc.Steps, c.steps())
	}
	limit, what := 0, ""
	switch m.Kind {
	case "mlp":
		limit, what = len(m.Hidden), "hidden layers"
	case "transformer":
		limit, what = m.Layers, "blocks"
	case "gaussian_moe":
		if m.MoE.CapacityFactor != 0 {
			c.errorf("model.moe.capacity_factor", "E-COMPILE-MOE", "a gaussian_moe head weighs every expert densely; capacity_factor has no effect there (leave it 0)")
		}
		return
	}
	for i, l := range m.MoE.Layers {
		if l > limit {
			c.errorf(fmt.Sprintf("model.moe.layers[%d]", i), "E-COMPILE-MOE", "layer %d: the model has %d %s", l, limit, what)
		}
	}
}
