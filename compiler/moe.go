package compiler

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// Mixture-of-experts layers. The compiler emits the straightforward graph
// (see ir/optable_moe.go): router logits, a gate, and per expert a
// dispatch, a gather of its tokens (padded to the capacity), its FFN, the
// gate weights of its tokens and a weighted scatter back; the experts'
// contributions are added in expert order. Autodiff differentiates that
// graph; the pass fuse-moe-gating turns the whole of it, forward and
// backward, into the gating kernel, one grouped GEMM and the combine.

// MoEConfig is one MoE layer as the compiler builds it.
type MoEConfig struct {
	Name     string // parameter prefix, "moe1"
	Width    int    // d: the layer maps [T,d] to [T,d]
	Tokens   int    // T
	Spec     schema.MoE
	Capacity int // tokens per expert: T when dropless
}

// MoECapacity is the tokens each of E experts takes from T tokens with
// top-k routing: ceil(f·T·k/E) for a capacity factor f > 0 (at most T),
// T when dropless (f = 0).
func MoECapacity(tokens, experts, k int, factor float64) int {
	if factor <= 0 {
		return tokens
	}
	c := int(math.Ceil(factor * float64(tokens) * float64(k) / float64(experts)))
	return max(1, min(c, tokens))
}

// moeLayer holds one layer's parameters in one function.
type moeLayer struct {
	cfg             MoEConfig
	router, routerB *ir.Value
	w1, b1, w2, b2  []*ir.Value
}

// params lists the layer's parameters in a fixed order.
func (l *moeLayer) params() []*ir.Value {
	ps := []*ir.Value{l.router, l.routerB}
	for e := range l.w1 {
		ps = append(ps, l.w1[e], l.b1[e], l.w2[e], l.b2[e])
	}
	return ps
}

// newMoELayer adds the layer's parameters to the function being built.
func newMoELayer(b *ir.Builder, cfg MoEConfig) *moeLayer {
	s := cfg.Spec
	l := &moeLayer{cfg: cfg}
	param := func(name, init string, dims ...int) *ir.Value {
		p := b.Param(cfg.Name+"."+name, ir.Tensor(ir.F32, dims...), ir.RoleParam)
		p.Init = init
		return p
	}
	l.router = param("router.w", "xavier_uniform", cfg.Width, s.Experts)
	l.routerB = param("router.b", "zeros", s.Experts)
	in := "he_normal"
	if act := moeAct(s); act == "tanh" || act == "sigmoid" {
		in = "xavier_uniform"
	}
	for e := 0; e < s.Experts; e++ {
		ex := fmt.Sprintf("e%d.", e)
		l.w1 = append(l.w1, param(ex+"w1", in, cfg.Width, s.Hidden))
		l.b1 = append(l.b1, param(ex+"b1", "zeros", s.Hidden))
		l.w2 = append(l.w2, param(ex+"w2", "xavier_uniform", s.Hidden, cfg.Width))
		l.b2 = append(l.b2, param(ex+"b2", "zeros", cfg.Width))
	}
	return l
}

func moeAct(s schema.MoE) string {
	if s.Activation == "" {
		return "relu"
	}
	return s.Activation
}

// routerAttrs are the selection attributes every routing op shares.
func routerAttrs(s schema.MoE) ir.Attrs {
	a := ir.Attrs{"k": s.TopK}
	if s.RouterActivation != "" && s.RouterActivation != "none" {
		a["act"] = s.RouterActivation
	}
	return a
}

// MoEGateAttrs are moe_gate's attributes for a layer spec.
func MoEGateAttrs(s schema.MoE) ir.Attrs {
	a := routerAttrs(s)
	a["gate"] = s.Gate
	if s.Gate == "" {
		a["gate"] = "topk_softmax"
	}
	if s.Renormalize && s.Gate == "softmax_topk" {
		a["renormalize"] = true
	}
	return a
}

// moeOut is what a layer's forward pass produced besides its output.
type moeOut struct {
	logits        *ir.Value // router logits [T,E]
	aux           *ir.Value // auxiliary loss, nil when its weights are 0
	load, dropped *ir.Value // metrics (training only)
}

// forward emits y = MoE(x) for x [T,d]. With training it also emits the
// auxiliary loss and the routing metrics.
func (l *moeLayer) forward(b *ir.Builder, x, tau *ir.Value, training bool) (*ir.Value, moeOut) {
	cfg, s := l.cfg, l.cfg.Spec
	n := cfg.Name
	h := b.V("matmul", nil, n+".router.mm", x, l.router)
	h = b.V("bias_add", nil, n+".logits", h, l.routerB)
	g := b.V("moe_gate", MoEGateAttrs(s), n+".gate", h, tau)
	act := moeAct(s)
	var y *ir.Value
	for e := 0; e < s.Experts; e++ {
		en := fmt.Sprintf("%s.e%d", n, e)
		da := routerAttrs(s)
		da["expert"], da["capacity"] = e, cfg.Capacity
		idx := b.V("moe_dispatch", da, en+".idx", h)
		xe := b.V("moe_gather", nil, en+".x", x, idx)
		z := b.V("matmul", nil, en+".mm1", xe, l.w1[e])
		z = b.V("bias_add", nil, en+".z", z, l.b1[e])
		a := b.V(act, nil, en+".h", z)
		ye := b.V("matmul", nil, en+".mm2", a, l.w2[e])
		ye = b.V("bias_add", nil, en+".y", ye, l.b2[e])
		ge := b.V("moe_gate_take", ir.Attrs{"expert": e}, en+".g", g, idx)
		yw := b.V("moe_scale_rows", nil, en+".yw", ye, ge)
		ce := b.V("moe_scatter", ir.Attrs{"rows": cfg.Tokens}, en+".out", yw, idx)
		if y == nil {
			y = ce
		} else {
			y = b.V("add", nil, n+".sum", y, ce)
		}
	}
	out := moeOut{logits: h}
	if !training {
		return y, out
	}
	if s.LoadBalance != 0 || s.ZLoss != 0 {
		aa := routerAttrs(s)
		if s.LoadBalance != 0 {
			aa["load_balance"] = s.LoadBalance
		}
		if s.ZLoss != 0 {
			aa["z_loss"] = s.ZLoss
		}
		out.aux = b.V("moe_aux", aa, n+".aux", h, tau)
	}
	sa := routerAttrs(s)
	sa["capacity"] = cfg.Capacity
	st := b.Must("moe_stats", []*ir.Value{h}, sa, n+".load", n+".dropped")
	out.load, out.dropped = st.Results[0], st.Results[1]
	return y, out
}

// MoELayerValues are what EmitMoELayer emitted.
type MoELayerValues struct {
	Y             *ir.Value   // the layer's output [T,d]
	Params        []*ir.Value // router weight and bias, then W1, b1, W2, b2 of each expert
	Aux           *ir.Value   // auxiliary loss (training, nil when its weights are 0)
	Load, Dropped *ir.Value   // routing metrics (training)
}

// EmitMoELayer adds one MoE layer with its parameters to the function b
// builds; x is its input [T,d], tau the temperature (a f32 scalar). The
// benchmarks and the fusion tests build layers this way.
func EmitMoELayer(b *ir.Builder, cfg MoEConfig, x, tau *ir.Value, training bool) MoELayerValues {
	l := newMoELayer(b, cfg)
	y, out := l.forward(b, x, tau, training)
	return MoELayerValues{Y: y, Params: l.params(), Aux: out.aux, Load: out.load, Dropped: out.dropped}
}

// moeTemperature emits the layer temperature: a constant, or with a
// schedule the anneal op in train (whose value is also stored in the state
// slot moe.tau, updated in place) and that slot in eval, so that
// evaluation uses the temperature of the last training step.
func (c *compiler) moeTemperature(b *ir.Builder, s schema.MoE, path string, step *ir.Value) *ir.Value {
	b.Loc = c.loc(path + ".temperature")
	if s.TemperatureSchedule == nil {
		return b.V("fill", ir.Attrs{"value": s.Temperature, "shape": []int{}}, "moe.tau")
	}
	b.Loc = c.loc(path + ".temperature_schedule")
	slot := b.Param("moe.tau", ir.Scalar(ir.F32), ir.RoleState)
	if step == nil {
		return slot
	}
	sc := s.TemperatureSchedule
	steps := sc.Steps
	if steps == 0 {
		steps = c.steps()
	}
	kind := sc.Kind
	if kind == "" {
		kind = "linear"
	}
	tau := b.V("anneal", ir.Attrs{"kind": kind, "start": s.Temperature, "end": sc.End, "steps": steps}, "moe.tau.now", step)
	b.F.Outputs = append(b.F.Outputs, ir.Output{Name: "moe.tau", Value: tau, Updates: slot})
	return tau
}

// MoELayerModule is a module of one MoE layer's forward and backward pass,
// for benchmarks and equivalence tests: a "train" function of inputs x
// [T,d] and r [T,d] whose loss is Σ MoE(x)⊙r plus the auxiliary loss, with
// outputs loss, y, load, dropped and the gradient "d.<name>" of every
// parameter (and, with dx, of x).
func MoELayerModule(cfg MoEConfig, dx bool) (*ir.Module, error) {
	f := &ir.Func{Name: "train"}
	b := ir.NewBuilder(f)
	x := b.Param("x", ir.Tensor(ir.F32, cfg.Tokens, cfg.Width), ir.RoleInput)
	r := b.Param("r", ir.Tensor(ir.F32, cfg.Tokens, cfg.Width), ir.RoleInput)
	tau := b.V("fill", ir.Attrs{"value": cfg.Spec.Temperature, "shape": []int{}}, "tau")
	v := EmitMoELayer(b, cfg, x, tau, true)
	loss := b.V("sum_all", nil, "loss", b.V("mul", nil, "yr", v.Y, r))
	if v.Aux != nil {
		loss = b.V("add", nil, "loss.total", loss, v.Aux)
	}
	wrt := v.Params
	if dx {
		wrt = append(append([]*ir.Value{}, wrt...), x)
	}
	grads, err := Grad(b, loss, wrt)
	if err != nil {
		return nil, err
	}
	f.Outputs = []ir.Output{{Name: "loss", Value: loss}, {Name: "y", Value: v.Y},
		{Name: "load", Value: v.Load}, {Name: "dropped", Value: v.Dropped}}
	for i, w := range wrt {
		f.Outputs = append(f.Outputs, ir.Output{Name: "d." + w.Name, Value: grads[i]})
	}
	return &ir.Module{Name: cfg.Name + "-layer", Funcs: []*ir.Func{f}}, nil
}
