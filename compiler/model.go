package compiler

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// model is a built network: its trainable parameters (in a fixed order) and
// a forward function that emits the graph from inputs to logits.
type model struct {
	params  []*ir.Value
	forward func(b *ir.Builder, x *ir.Value) *ir.Value
}

// modelBuilders maps spec model kinds to their graph builders; convnet and
// transformer join here.
var modelBuilders = map[string]func(c *compiler, b *ir.Builder) model{
	"mlp": buildMLP,
}

func (c *compiler) model(b *ir.Builder) model {
	return modelBuilders[c.exp.Model.Kind](c, b)
}

// buildMLP: fc1..fcN, each x·W + b, the activation between layers.
func buildMLP(c *compiler, b *ir.Builder) model {
	widths := append(append([]int{c.in.Data.Features}, c.hiddenWidths()...), c.in.Data.Classes)
	act, init := mlpActivation(c.exp.Model)
	type layer struct {
		w, b *ir.Value
		loc  ir.Loc
		mask *maskRef // nil unless method.sparsity masks the layer
	}
	var layers []layer
	var params []*ir.Value
	for i := 0; i+1 < len(widths); i++ {
		name, w, bias := c.denseLayer(b, widths, i, init)
		layers = append(layers, layer{w, bias, b.Loc, c.maskParams(b, name, w)})
		params = append(params, w, bias)
	}
	return model{params: params, forward: func(b *ir.Builder, x *ir.Value) *ir.Value {
		h := x
		for i, l := range layers {
			b.Loc = l.loc
			name := fmt.Sprintf("fc%d", i+1)
			z := b.V("matmul", nil, name+".mm", h, l.mask.apply(b, l.w, name))
			if i == len(layers)-1 {
				return b.V("bias_add", nil, "logits", z, l.b)
			}
			z = b.V("bias_add", nil, name+".z", z, l.b)
			h = b.V(act, nil, name+".h", z)
		}
		return h
	}}
}

// mlpActivation is the MLP's activation (relu by default) and the weight
// initializer that suits it (He for relu-like, Xavier for tanh and sigmoid,
// unless the spec names one).
func mlpActivation(spec schema.Model) (act, init string) {
	act = spec.Activation
	if act == "" {
		act = "relu"
	}
	init = "he_normal"
	if spec.Init == "xavier" || (spec.Init == "" && (act == "tanh" || act == "sigmoid")) {
		init = "xavier_uniform"
	}
	return act, init
}

// denseLayer declares layer i's parameters fc<i+1>.w [widths[i], widths[i+1]]
// and fc<i+1>.b, positioned at the hidden width that set them (the output
// layer at the model), and leaves b.Loc there.
func (c *compiler) denseLayer(b *ir.Builder, widths []int, i int, init string) (name string, w, bias *ir.Value) {
	name = fmt.Sprintf("fc%d", i+1)
	path := fmt.Sprintf("model.hidden[%d]", i)
	if i == len(widths)-2 {
		path = "model"
	}
	b.Loc = c.loc(path)
	w = b.Param(name+".w", ir.Tensor(ir.F32, widths[i], widths[i+1]), ir.RoleParam)
	w.Init = init
	bias = b.Param(name+".b", ir.Tensor(ir.F32, widths[i+1]), ir.RoleParam)
	bias.Init = "zeros"
	return name, w, bias
}
