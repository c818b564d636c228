package explain

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/lowering"
)

// SparseLayer is one masked layer of a sparse-training plan: its mask, the
// kernel each of its products runs (chosen by the fuse-sparse-masks cost
// model, whose estimates are recomputed here from the kernel's attributes)
// and the density its schedule gives over training.
type SparseLayer struct {
	Layer    string         `json:"layer"`
	Pattern  string         `json:"pattern"`
	Density  float64        `json:"density"`  // final
	Schedule string         `json:"schedule"` // in words
	Products []SparseKernel `json:"products"`
	// Curve samples the density the layer has at each step of the run
	// (after the last mask update at or before it); empty for static masks.
	Curve []DensityPoint `json:"density_curve,omitempty"`
}

// SparseKernel is one product of a masked layer in one program.
type SparseKernel struct {
	Program    string                `json:"program"`
	Kernel     string                `json:"kernel"`  // k3
	Product    string                `json:"product"` // fwd, dx, dw
	Chosen     string                `json:"chosen"`  // nm, block, csr, dense; "unfused" without the pass
	DenseAbove float64               `json:"dense_above,omitempty"`
	DenseFLOPs int64                 `json:"dense_flops"`
	FLOPs      int64                 `json:"flops"`
	Candidates []lowering.KernelCost `json:"candidates,omitempty"`
}

// DensityPoint is the density from Step on.
type DensityPoint struct {
	Step    int     `json:"step"`
	Density float64 `json:"density"`
}

func sparsityReport(p *ir.Plan) []SparseLayer {
	ms := p.Schedule.Masks
	if ms == nil {
		return nil
	}
	byName := map[string]int{}
	for _, b := range p.Buffers {
		byName[b.Name] = b.ID
	}
	var rules map[string]ir.Attrs // mask buffer -> mask_update attributes
	if pr := p.Program(ms.Program); pr != nil {
		rules = map[string]ir.Attrs{}
		for _, k := range pr.Kernels {
			if k.Op == "mask_update" && len(k.Ins) > 1 {
				rules[p.Buffers[k.Ins[1]].Name] = k.Attrs
			}
		}
	}
	var out []SparseLayer
	for _, l := range ms.Layers {
		sl := SparseLayer{Layer: l.Layer, Pattern: l.Pattern, Density: l.Density, Products: []SparseKernel{}}
		rule := rules[l.Mask]
		sl.Schedule = scheduleWords(rule)
		if rule.Str("schedule", "static") == "gradual" || rule.Int("dense_at", 0) > 0 {
			sl.Curve = densityCurve(rule, ms.Steps, p.Schedule.Steps)
		}
		mask, wid := byName[l.Mask], byName[l.Weight]
		wt := p.Buffers[wid].Type
		for _, pr := range p.Programs {
			for _, k := range pr.Kernels {
				if sk, ok := sparseKernel(p, pr.Name, k, mask, wid, wt); ok {
					sl.Products = append(sl.Products, sk)
				}
			}
		}
		out = append(out, sl)
	}
	return out
}

// sparseKernel describes k when it is a product of the layer whose mask
// buffer is mask and weight buffer wid: a masked matmul, or (unfused) a
// matmul reading W ⊙ M.
func sparseKernel(p *ir.Plan, prog string, k ir.Kernel, mask, wid int, wt ir.Type) (SparseKernel, bool) {
	sk := SparseKernel{Program: prog, Kernel: k.Name, FLOPs: k.FLOPs}
	switch k.Op {
	case "masked_matmul", "masked_matmul_dw":
		if len(k.Ins) < 4 || k.Ins[2] != mask {
			return sk, false
		}
		sk.Product = string(lowering.Forward)
		switch {
		case k.Op == "masked_matmul_dw":
			sk.Product = string(lowering.WeightG)
		case k.Attrs.Bool("transpose_b", false):
			sk.Product = string(lowering.InputGr)
		}
		sk.Chosen = k.Attrs.Str("kernel", "")
		sk.DenseAbove = k.Attrs.Float("dense_above", 0)
		batch := p.Buffers[k.Ins[0]].Type.Shape[0]
		sk.DenseFLOPs = 2 * int64(batch) * wt.Shape.Elems()
		sk.Candidates = lowering.MaskedCosts(lowering.Product(sk.Product), batch, wt, k.Attrs)
		return sk, true
	}
	return sk, false
}

func scheduleWords(a ir.Attrs) string {
	if a == nil {
		return "unknown"
	}
	s := a.Str("schedule", "static")
	init := a.Str("init", "random")
	var w string
	switch s {
	case "gradual":
		w = fmt.Sprintf("gradual magnitude pruning %.2f -> %.2f over steps %d..%d, every %d",
			a.Float("initial_density", 1), a.Float("density", 1), a.Int("start", 0), a.Int("end", 0), a.Int("every", 0))
	case "reselect":
		w = fmt.Sprintf("%s init, re-selected by magnitude every %d steps", init, a.Int("every", 0))
	default:
		w = fmt.Sprintf("static %s mask", init)
	}
	if d := a.Int("dense_at", 0); d > 0 {
		w += fmt.Sprintf(", dense from step %d (revived weights start at 0)", d)
	}
	return w
}

// densityCurve lists the density after every mask update.
func densityCurve(a ir.Attrs, steps []int, total int) []DensityPoint {
	var pts []DensityPoint
	for _, s := range steps {
		if s < total {
			pts = append(pts, DensityPoint{Step: s, Density: ir.MaskDensityAt(a, s)})
		}
	}
	return pts
}

// densityAt is the density in force at step s.
func densityAt(pts []DensityPoint, s int) float64 {
	d := 1.0
	for _, p := range pts {
		if p.Step > s {
			break
		}
		d = p.Density
	}
	return d
}

func writeSparsity(w io.Writer, layers []SparseLayer, totalSteps int, target string) {
	if len(layers) == 0 {
		return
	}
	fmt.Fprintln(w, "\nsparsity  (masked layers; kernels chosen by the fuse-sparse-masks cost model)")
	// The model's rates were measured for the CPU backend only: say so
	// where its milliseconds could be read as another target's.
	if target != "cpu" {
		fmt.Fprintf(w, "  estimates are the CPU backend's (2-core reference machine); %s kernels have no rates of their own yet\n", target)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  layer\tpattern\tdensity\tprogram\tkernel\tproduct\tchosen\tFLOPs dense -> masked\tsaved")
	for _, l := range layers {
		for i, k := range l.Products {
			name, pat, dens := "", "", ""
			if i == 0 {
				name, pat, dens = l.Layer, l.Pattern, fmt.Sprintf("%.3g", l.Density)
			}
			saved := 0.0
			if k.DenseFLOPs > 0 {
				saved = 100 * (1 - float64(k.FLOPs)/float64(k.DenseFLOPs))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s -> %s\t%.0f%%\n", name, pat, dens, k.Program, k.Kernel, k.Product,
				k.Chosen, SI(k.DenseFLOPs, "FLOP"), SI(k.FLOPs, "FLOP"), math.Max(saved, 0))
		}
	}
	tw.Flush()
	for _, l := range layers {
		fmt.Fprintf(w, "  %s: %s\n", l.Layer, l.Schedule)
		seen := map[string]bool{}
		for _, k := range l.Products {
			key := k.Product + "/" + k.Chosen
			if seen[key] || len(k.Candidates) == 0 || k.Program != "train" && seen[k.Product+"/"] {
				continue
			}
			seen[key], seen[k.Product+"/"] = true, true
			var parts []string
			for _, c := range k.Candidates {
				parts = append(parts, fmt.Sprintf("%s %.2f ms", c.Kernel, c.Seconds*1e3))
			}
			why := k.Candidates[0].Note
			if k.DenseAbove > 0 && len(l.Curve) > 0 {
				why += fmt.Sprintf("; dense-with-mask while the mask is denser than %.3g", k.DenseAbove)
			}
			fmt.Fprintf(w, "    %-3s %s: estimates %s -> %s (%s)\n", k.Product, k.Chosen, strings.Join(parts, ", "), k.Candidates[0].Kernel, why)
		}
		if len(l.Products) == 0 {
			fmt.Fprintln(w, "    unfused: W ⊙ M, then dense GEMMs (pass fuse-sparse-masks did not run)")
		}
		if len(l.Curve) > 0 {
			writeCurve(w, l, totalSteps)
		}
	}
}

// writeCurve draws the density over training as a small text chart: one
// column per slice of the run, the bar height the density in force.
func writeCurve(w io.Writer, l SparseLayer, total int) {
	const width, height = 60, 6
	fmt.Fprintf(w, "    density of %s over %d steps (%d mask updates):\n", l.Layer, total, len(l.Curve))
	cols := make([]float64, width)
	for c := range cols {
		cols[c] = densityAt(l.Curve, c*max(total-1, 0)/(width-1))
	}
	for row := height; row >= 1; row-- {
		level := float64(row) / height
		var sb strings.Builder
		for _, d := range cols {
			switch {
			case d >= level-1e-9:
				sb.WriteString("#")
			case d >= level-0.5/height:
				sb.WriteString(".")
			default:
				sb.WriteString(" ")
			}
		}
		fmt.Fprintf(w, "    %4.2f |%s\n", level, strings.TrimRight(sb.String(), " "))
	}
	fmt.Fprintf(w, "         +%s\n", strings.Repeat("-", width))
	fmt.Fprintf(w, "          %-*d%d\n", width-len(fmt.Sprint(total)), 0, total)
	var marks []string
	for _, pt := range l.Curve {
		if len(marks) == 0 || pt.Density != densityAt(l.Curve, pt.Step-1) {
			marks = append(marks, fmt.Sprintf("%d:%.3g", pt.Step, pt.Density))
		}
	}
	if len(marks) > 8 {
		marks = append(marks[:4], append([]string{"..."}, marks[len(marks)-3:]...)...)
	}
	fmt.Fprintf(w, "         step:density %s\n", strings.Join(marks, " "))
}
