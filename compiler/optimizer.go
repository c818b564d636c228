package compiler

import (
	"github.com/expc-dev/expc/ir"
)

// optimizers map spec optimizer kinds to the update they emit. Each adds its
// state slots as RoleState params and an Output that updates every param and
// slot in place.
var optimizers = map[string]func(c *compiler, b *ir.Builder, w, g, lr, step *ir.Value){
	"sgd":   emitSGD,
	"adamw": emitAdamW,
}

// optimize emits the LR schedule and one update per parameter; it returns lr.
func (c *compiler) optimize(b *ir.Builder, params, grads []*ir.Value, step *ir.Value) *ir.Value {
	o := c.exp.Optimizer
	b.Loc = c.loc("optimizer.schedule")
	lr := b.V("lr_schedule", ir.Attrs{
		"kind": scheduleKind(o.Schedule.Kind), "lr": o.LR, "min_lr": o.Schedule.MinLR,
		"warmup": o.Schedule.WarmupSteps, "total": c.steps(),
	}, "lr", step)
	b.Loc = c.loc("optimizer")
	emit := optimizers[o.Kind]
	for i, w := range params {
		emit(c, b, w, grads[i], lr, step)
	}
	return lr
}

func scheduleKind(k string) string {
	if k == "" {
		return "constant"
	}
	return k
}

// decay is the weight decay for w: matrices decay, biases do not (the usual
// practice, and what PyTorch recipes for these models do).
func (c *compiler) decay(w *ir.Value) float64 {
	if w.Type.Rank() < 2 {
		return 0
	}
	return c.exp.Optimizer.WeightDecay
}

func stateSlot(b *ir.Builder, w *ir.Value, slot string) *ir.Value {
	return b.Param(w.Name+"."+slot, w.Type, ir.RoleState)
}

func emitSGD(c *compiler, b *ir.Builder, w, g, lr, _ *ir.Value) {
	o := c.exp.Optimizer
	v := stateSlot(b, w, "v")
	attrs := ir.Attrs{"momentum": o.Momentum, "weight_decay": c.decay(w), "nesterov": o.Nesterov}
	in := b.Must("sgd", []*ir.Value{w, g, v, lr}, attrs, w.Name+".new", v.Name+".new")
	b.F.Outputs = append(b.F.Outputs,
		ir.Output{Name: w.Name, Value: in.Results[0], Updates: w},
		ir.Output{Name: v.Name, Value: in.Results[1], Updates: v})
}

func emitAdamW(c *compiler, b *ir.Builder, w, g, lr, step *ir.Value) {
	o := c.exp.Optimizer
	m, v := stateSlot(b, w, "m"), stateSlot(b, w, "v")
	attrs := ir.Attrs{"beta1": o.Beta1, "beta2": o.Beta2, "eps": o.Eps, "weight_decay": c.decay(w)}
	in := b.Must("adamw", []*ir.Value{w, g, m, v, lr, step}, attrs, w.Name+".new", m.Name+".new", v.Name+".new")
	b.F.Outputs = append(b.F.Outputs,
		ir.Output{Name: w.Name, Value: in.Results[0], Updates: w},
		ir.Output{Name: m.Name, Value: in.Results[1], Updates: m},
		ir.Output{Name: v.Name, Value: in.Results[2], Updates: v})
}
