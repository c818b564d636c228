package compiler

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// LossModuleSpec describes a module that computes one contrastive loss and
// its gradients, without a model: the graph the fuse-contrastive pass
// rewrites, for tests and benchmarks.
type LossModuleSpec struct {
	LossOptions
	Rows, Dim int
	// Tau: "" or "fixed" (a scale by InvTemperature), "scalar" (an input
	// invtau f32[]), "rows" (an input invtau f32[rows], also differentiated).
	Tau string
	// GuideDim > 0 makes the negatives guided by input unit rows g[rows, GuideDim] (and g2 for dual).
	GuideDim int
	// Symmetric (dual): the mean of both directions' losses.
	Symmetric bool
}

// LossModule builds func "train" with inputs h[rows, dim] (h2 for dual;
// invtau; y i32[rows] for supcon; g, g2 for a guide) and outputs "loss",
// "dh" (and "dh2", "dinvtau"): z = l2_normalize(h), the loss of
// EmitContrastiveLoss, and its reverse-mode gradients.
func LossModule(s LossModuleSpec) (*ir.Module, error) {
	f := &ir.Func{Name: "train"}
	b := ir.NewBuilder(f)
	dual := s.Objective == "dual" || s.Objective == "dual_infonce"
	h := b.Param("h", ir.Tensor(ir.F32, s.Rows, s.Dim), ir.RoleInput)
	wrt, names := []*ir.Value{h}, []string{"dh"}
	var h2, invTau, y, g, g2 *ir.Value
	if dual {
		h2 = b.Param("h2", ir.Tensor(ir.F32, s.Rows, s.Dim), ir.RoleInput)
		wrt, names = append(wrt, h2), append(names, "dh2")
	}
	switch s.Tau {
	case "", "fixed":
	case "scalar":
		invTau = b.Param("invtau", ir.Scalar(ir.F32), ir.RoleInput)
	case "rows":
		invTau = b.Param("invtau", ir.Tensor(ir.F32, s.Rows), ir.RoleInput)
		wrt, names = append(wrt, invTau), append(names, "dinvtau")
	default:
		return nil, fmt.Errorf("unknown temperature %q", s.Tau)
	}
	if s.Objective == "supcon" {
		y = b.Param("y", ir.Tensor(ir.I32, s.Rows), ir.RoleInput)
	}
	if s.GuideDim > 0 {
		g = b.Param("g", ir.Tensor(ir.F32, s.Rows, s.GuideDim), ir.RoleInput)
		g2 = g
		if dual {
			g2 = b.Param("g2", ir.Tensor(ir.F32, s.Rows, s.GuideDim), ir.RoleInput)
		}
	}
	za := b.V("l2_normalize", nil, "z", h)
	zb := za
	if dual {
		zb = b.V("l2_normalize", nil, "z.b", h2)
	}
	loss := EmitContrastiveLoss(b, s.LossOptions, za, zb, g, g2, y, invTau)
	if dual && s.Symmetric {
		back := EmitContrastiveLoss(b, s.LossOptions, zb, za, g2, g, y, invTau)
		loss = b.V("scale", ir.Attrs{"factor": 0.5}, "loss", b.V("add", nil, "loss", loss, back))
	}
	grads, err := Grad(b, loss, wrt)
	if err != nil {
		return nil, err
	}
	f.Outputs = []ir.Output{{Name: "loss", Value: loss}}
	for i, gr := range grads {
		f.Outputs = append(f.Outputs, ir.Output{Name: names[i], Value: gr})
	}
	return &ir.Module{Name: "contrastive-loss", Funcs: []*ir.Func{f}}, nil
}
