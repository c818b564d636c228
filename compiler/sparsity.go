package compiler

import (
	"fmt"
	"hash/fnv"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// Sparse training (method.sparsity). Each selected layer keeps its dense
// weight W and gets two pieces of state: the 0/1 mask M ("fc1.mask", same
// shape as W) and its generation ("fc1.mask.gen", see ir/optable_sparse.go).
// The forward pass multiplies by W ⊙ M (a plain mul), so autodiff gives
// pruned weights a zero gradient. A third program, "mask", holds one
// mask_update per layer; the runner runs it before the steps listed in
// plan.Schedule.Masks.Steps (step 0 chooses the first mask). Which density
// a mask has at a step, and how it is chosen, are mask_update attributes:
// the schedule is plan data, not a callback.

// sparsity is the resolved method.sparsity of a spec.
type sparsity struct {
	spec    *schema.Sparsity
	layers  []*sparseLayer // selected layers, in forward order
	hidden  []int          // hidden widths, after iso-FLOP widening
	steps   []int          // steps before which the mask program runs
	denseAt int            // step of the switch to dense; 0: never
	attrs   ir.Attrs       // mask_update attributes shared by every layer
}

type sparseLayer struct {
	name     string // fc1, fc2, ...
	in, out  int
	density  float64 // final density (layer-wise allocation applied)
	initial  float64 // gradual: starting density
	seed     int
	weight   string // names of the state in the plan
	mask     string
	gen      string
	initKind string // the weight's initializer (the mask program names it too)
}

// maskRef is a masked layer's state as parameters of one function.
type maskRef struct {
	m, gen *ir.Value
}

// apply returns the weight the forward pass uses: w ⊙ m, or w itself for
// an unmasked layer (r == nil).
func (r *maskRef) apply(b *ir.Builder, w *ir.Value, name string) *ir.Value {
	if r == nil {
		return w
	}
	return b.V("mul", nil, name+".wm", w, r.m)
}

// hiddenWidths are the MLP's hidden widths: the spec's, or widened for
// iso-FLOP sparse training.
func (c *compiler) hiddenWidths() []int {
	if c.sp != nil && c.sp.hidden != nil {
		return c.sp.hidden
	}
	return c.exp.Model.Hidden
}

// maskParams adds the mask state of layer name (weight w) to the function
// being built; nil when the layer is not masked.
func (c *compiler) maskParams(b *ir.Builder, name string, w *ir.Value) *maskRef {
	if c.sp == nil {
		return nil
	}
	for _, l := range c.sp.layers {
		if l.name == name {
			l.weight, l.initKind = w.Name, w.Init
			m := b.Param(name+".mask", w.Type, ir.RoleState)
			gen := b.Param(name+".mask.gen", ir.Scalar(ir.I32), ir.RoleState)
			l.mask, l.gen = m.Name, gen.Name
			return &maskRef{m: m, gen: gen}
		}
	}
	return nil
}

// maskFunc is the "mask" program: one mask_update per masked layer.
func (c *compiler) maskFunc() *ir.Func {
	if c.sp == nil {
		return nil
	}
	f := &ir.Func{Name: "mask"}
	b := ir.NewBuilder(f)
	b.Loc = c.loc("method.sparsity")
	step := b.Param("step", ir.Scalar(ir.I32), ir.RoleInput)
	for _, l := range c.sp.layers {
		t := ir.Tensor(ir.F32, l.in, l.out)
		w := b.Param(l.weight, t, ir.RoleParam)
		w.Init = l.initKind
		m := b.Param(l.mask, t, ir.RoleState)
		gen := b.Param(l.gen, ir.Scalar(ir.I32), ir.RoleState)
		attrs := c.sp.attrs.Clone()
		attrs["density"] = l.density
		attrs["seed"] = l.seed
		if attrs.Str("schedule", "") == "gradual" {
			attrs["initial_density"] = l.initial
		}
		in := b.Must("mask_update", []*ir.Value{w, m, gen, step}, attrs, l.name+".w.masked", l.mask+".new", l.gen+".new")
		f.Outputs = append(f.Outputs,
			ir.Output{Name: w.Name, Value: in.Results[0], Updates: w},
			ir.Output{Name: m.Name, Value: in.Results[1], Updates: m},
			ir.Output{Name: gen.Name, Value: in.Results[2], Updates: gen})
	}
	return f
}

// maskSchedule is the plan's record of the masks.
func (c *compiler) maskSchedule() *ir.MaskSchedule {
	if c.sp == nil {
		return nil
	}
	s := &ir.MaskSchedule{Program: "mask", Steps: slices.Clone(c.sp.steps), Layers: []ir.MaskLayer{}}
	for _, l := range c.sp.layers {
		s.Layers = append(s.Layers, ir.MaskLayer{Layer: l.name, Weight: l.weight, Mask: l.mask, Gen: l.gen,
			Pattern: c.sp.patternName(), Density: l.density})
	}
	return s
}

func (sp *sparsity) patternName() string {
	switch s := sp.spec; {
	case s.N > 0:
		return fmt.Sprintf("%d:%d", s.N, s.M)
	case s.Pattern == "block":
		return fmt.Sprintf("block %dx%d", s.Block[0], s.Block[1])
	}
	return "unstructured"
}

// checkSparsity resolves method.sparsity (layers, densities, widths,
// schedule) and reports what CUE cannot check: globs that match nothing,
// shapes a pattern cannot tile, schedules that do not fit the run.
func (c *compiler) checkSparsity() {
	if c.exp.Method == nil || c.exp.Method.Sparsity == nil {
		return
	}
	s := c.exp.Method.Sparsity
	sp := &sparsity{spec: s}
	const at = "method.sparsity"
	if c.exp.Model.Kind != "mlp" || c.moeModel() || c.contrastive() {
		c.errorf(at, "E-COMPILE-SPARSITY", "sparse training masks the layers of a plain mlp model (no experts, no contrastive loss)")
		return
	}
	if s.Pattern == "block" && len(s.Block) != 2 {
		c.errorf(at+".block", "E-COMPILE-SPARSITY", "block must be [rows, cols]")
		return
	}
	n := len(c.exp.Model.Hidden) + 1
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("fc%d", i+1)
	}
	selected := make([]bool, n)
	for gi, g := range s.Layers {
		hit := false
		for i, name := range names {
			ok, err := path.Match(g, name)
			if err != nil {
				c.errorf(fmt.Sprintf("%s.layers[%d]", at, gi), "E-COMPILE-SPARSITY", "bad layer pattern %q: %v", g, err)
				return
			}
			if ok {
				selected[i], hit = true, true
			}
		}
		if !hit {
			c.errorf(fmt.Sprintf("%s.layers[%d]", at, gi), "E-COMPILE-SPARSITY",
				"layer pattern %q matches no layer (the model's layers are %s)", g, strings.Join(names, ", "))
		}
	}
	if len(c.diags) > 0 {
		return
	}
	kind := s.Schedule.Kind
	switch {
	case kind == "gradual" && s.N > 0:
		c.errorf(at+".schedule.kind", "E-COMPILE-SPARSITY",
			"gradual pruning needs an unstructured or block pattern: an %d:%d mask always keeps %d of every %d weights", s.N, s.M, s.N, s.M)
	case s.Allocation == "erk" && s.N > 0:
		c.errorf(at+".allocation", "E-COMPILE-SPARSITY",
			"erk allocation gives layers different densities, but an %d:%d mask has density %d/%d in every layer", s.N, s.M, s.N, s.M)
	}
	total := c.steps()
	if d := s.Schedule.DenseAt; d >= 1 {
		sp.denseAt = int(d)
	} else if d > 0 {
		sp.denseAt = max(1, int(math.Round(d*float64(total))))
	}
	if sp.denseAt >= total {
		c.errorf(at+".schedule.dense_at", "E-COMPILE-SPARSITY", "the switch to dense at step %d comes after the last of the %d training steps", sp.denseAt, total)
	}
	if kind == "gradual" {
		if s.Schedule.End >= total {
			c.errorf(at+".schedule.end", "E-COMPILE-SPARSITY", "pruning ends at step %d, but the run has %d steps", s.Schedule.End, total)
		}
		if sp.denseAt > 0 && sp.denseAt <= s.Schedule.End {
			c.errorf(at+".schedule.dense_at", "E-COMPILE-SPARSITY", "the switch to dense at step %d comes before pruning ends at step %d", sp.denseAt, s.Schedule.End)
		}
	}
	if len(c.diags) > 0 {
		return
	}

	// Widths, possibly widened, then the layer-wise densities.
	widths := func(hidden []int) []int {
		return append(append([]int{c.in.Data.Features}, hidden...), c.in.Data.Classes)
	}
	sp.hidden = slices.Clone(c.exp.Model.Hidden)
	if s.IsoFLOP {
		sp.hidden = isoFLOPWidths(c.in.Data.Features, c.exp.Model.Hidden, c.in.Data.Classes, selected, s, c.widthAlign())
	}
	w := widths(sp.hidden)
	dens := layerDensities(w, selected, s)
	for i, name := range names {
		if !selected[i] || dens[i] >= 1 { // ERK can leave a small layer dense: no mask
			continue
		}
		in, out := w[i], w[i+1]
		inPath := "dataset"
		if i > 0 {
			inPath = fmt.Sprintf("model.hidden[%d]", i-1)
		}
		switch {
		case s.N > 0 && in%s.M != 0:
			c.errorf(at+".pattern", "E-COMPILE-SPARSITY",
				"pattern %q groups %d input features, but layer %s has %d inputs (%s), not a multiple of %d", s.Pattern, s.M, name, in, inPath, s.M)
		case s.Pattern == "block" && (in%s.Block[0] != 0 || out%s.Block[1] != 0):
			c.errorf(at+".block", "E-COMPILE-SPARSITY",
				"blocks of %dx%d do not tile layer %s (%d inputs x %d outputs): inputs must be a multiple of %d and outputs of %d",
				s.Block[0], s.Block[1], name, in, out, s.Block[0], s.Block[1])
		}
		// Rounded so that plans print short numbers (ERK gives long ones).
		d := math.Round(dens[i]*1e4) / 1e4
		l := &sparseLayer{name: name, in: in, out: out, density: d, seed: maskSeed(s.Seed, c.exp.Train.Seed, name)}
		if kind == "gradual" {
			l.initial = max(s.Schedule.InitialDensity, l.density)
		}
		sp.layers = append(sp.layers, l)
	}
	if len(c.diags) > 0 || len(sp.layers) == 0 {
		return
	}
	sp.attrs = ir.Attrs{"pattern": "unstructured", "init": s.Init, "schedule": kind}
	switch {
	case s.N > 0:
		sp.attrs["pattern"], sp.attrs["n"], sp.attrs["m"] = "nm", s.N, s.M
	case s.Pattern == "block":
		sp.attrs["pattern"], sp.attrs["block"] = "block", slices.Clone(s.Block)
	}
	switch kind {
	case "gradual":
		sp.attrs["start"], sp.attrs["end"], sp.attrs["every"] = s.Schedule.Start, s.Schedule.End, s.Schedule.Every
	case "reselect":
		sp.attrs["every"] = s.Schedule.Every
	}
	if sp.denseAt > 0 {
		sp.attrs["dense_at"] = sp.denseAt
	}
	sp.steps = maskSteps(kind, s.Schedule, sp.denseAt, total)
	c.sp = sp
}

// widthAlign is what hidden widths are rounded to when widened: a multiple
// of the pattern's group or block so that the shapes stay valid.
func (c *compiler) widthAlign() int {
	s := c.exp.Method.Sparsity
	switch {
	case s.N > 0:
		return s.M
	case s.Pattern == "block":
		return lcm(s.Block[0], s.Block[1])
	}
	return 8
}

func lcm(a, b int) int {
	g, h := a, b
	for h != 0 {
		g, h = h, g%h
	}
	return a / g * b
}

// maskSteps lists the steps (0-based, before the step runs) at which the
// mask program runs: 0 (the first mask), every pruning or re-selection step,
// and the switch to dense.
func maskSteps(kind string, s schema.SparsitySchedule, denseAt, total int) []int {
	steps := []int{0}
	switch kind {
	case "gradual":
		for t := s.Start; t < s.End; t += s.Every {
			steps = append(steps, t)
		}
		steps = append(steps, s.End)
	case "reselect":
		for t := s.Every; t < total; t += s.Every {
			steps = append(steps, t)
		}
	}
	var out []int
	for _, t := range steps {
		if t >= 0 && t < total && (denseAt == 0 || t < denseAt) {
			out = append(out, t)
		}
	}
	if denseAt > 0 {
		out = append(out, denseAt)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// layerDensities gives each selected layer of an MLP with the given widths
// its density: the spec's everywhere (uniform, and always for N:M), or
// Erdős–Rényi-Kernel: proportional to (in+out)/(in·out), scaled so the
// selected layers keep the spec's fraction of their weights, capped at 1.
func layerDensities(widths []int, selected []bool, s *schema.Sparsity) []float64 {
	d := make([]float64, len(selected))
	for i := range d {
		d[i] = 1
		if selected[i] {
			d[i] = s.Density
		}
	}
	if s.Allocation != "erk" || s.N > 0 {
		return d
	}
	dense := make([]bool, len(selected))
	for {
		var target, raw float64
		for i, sel := range selected {
			if !sel {
				continue
			}
			size := float64(widths[i] * widths[i+1])
			if dense[i] {
				target -= size
			} else {
				raw += float64(widths[i] + widths[i+1]) // Σ raw·size, raw = (in+out)/size
			}
			target += s.Density * size
		}
		eps := target / raw
		capped := false
		for i, sel := range selected {
			if !sel || dense[i] {
				continue
			}
			size := float64(widths[i] * widths[i+1])
			if v := eps * float64(widths[i]+widths[i+1]) / size; v > 1 {
				dense[i], capped = true, true
			} else {
				d[i] = v
			}
		}
		if !capped {
			for i := range d {
				if dense[i] {
					d[i] = 1
				}
			}
			return d
		}
	}
}

// isoFLOPWidths widens every hidden width by one factor so that the masked
// model's non-zero multiply-accumulates match the dense model's (Sparse
// Iso-FLOP Transformations). Widths are rounded to a multiple of align.
func isoFLOPWidths(in int, hidden []int, out int, selected []bool, s *schema.Sparsity, align int) []int {
	widths := func(f float64, round bool) []int {
		w := []int{in}
		for _, h := range hidden {
			x := float64(h) * f
			if round {
				w = append(w, max(align, int(math.Round(x/float64(align)))*align))
			} else {
				w = append(w, int(x))
			}
		}
		return append(w, out)
	}
	macs := func(w []int) float64 {
		d := layerDensities(w, selected, s)
		var t float64
		for i := range d {
			t += float64(w[i]*w[i+1]) * d[i]
		}
		return t
	}
	var dense float64
	base := widths(1, false)
	for i := 0; i+1 < len(base); i++ {
		dense += float64(base[i] * base[i+1])
	}
	lo, hi := 1.0, 1.0
	for macs(widths(hi, false)) < dense && hi < 1<<10 {
		hi *= 2
	}
	for range 60 {
		mid := (lo + hi) / 2
		if macs(widths(mid, false)) < dense {
			lo = mid
		} else {
			hi = mid
		}
	}
	w := widths(hi, true)
	return w[1 : len(w)-1]
}

// maskSeed is the random-mask stream of a layer: FNV-1a of its name mixed
// with the spec's seeds, in 31 bits so it survives the plan's JSON.
func maskSeed(seed, trainSeed int, layer string) int {
	h := fnv.New64a()
	fmt.Fprintf(h, "mask:%d:%d:%s", seed, trainSeed, layer)
	return int(h.Sum64() & 0x7fffffff)
}

func init() {
	NotDifferentiable["mask_update"] = "a scheduled state update (the mask program), not part of the loss"
}
