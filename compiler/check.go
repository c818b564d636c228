package compiler

import (
	"fmt"

	"github.com/expc-dev/expc/diag"
	"github.com/expc-dev/expc/ir"
)

// maxDim bounds every tensor dimension so that element indices fit in 32
// bits on every backend.
const maxDim = 1<<31 - 1

// check runs the cross-field checks CUE cannot express: sizes against the
// data, and kinds the compiler knows how to build.
func (c *compiler) check() diag.List {
	e, d := c.exp, c.in.Data
	if _, ok := modelBuilders[e.Model.Kind]; !ok {
		c.errorf("model.kind", "E-COMPILE-MODEL", "model kind %q is not supported by this compiler", e.Model.Kind)
	}
	if _, ok := optimizers[e.Optimizer.Kind]; !ok {
		c.errorf("optimizer.kind", "E-COMPILE-OPTIMIZER", "optimizer kind %q is not supported by this compiler", e.Optimizer.Kind)
	}
	if d.Features <= 0 || d.Classes < 2 {
		c.errorf("dataset", "E-COMPILE-DATA", "dataset has %d features and %d classes; need at least 1 feature and 2 classes", d.Features, d.Classes)
	}
	if e.Dataset.Batch > d.TrainN {
		c.errorf("dataset.batch", "E-COMPILE-BATCH", "batch %d is larger than the %d training examples", e.Dataset.Batch, d.TrainN)
	}
	for i, h := range e.Model.Hidden {
		if h > maxDim {
			c.errorf(fmt.Sprintf("model.hidden[%d]", i), "E-COMPILE-SIZE", "hidden width %d exceeds the largest supported dimension %d", h, maxDim)
		}
	}
	if e.Optimizer.Schedule.WarmupSteps > c.steps() && e.Optimizer.Schedule.Kind == "cosine" {
		c.errorf("optimizer.schedule.warmup_steps", "E-COMPILE-SCHEDULE", "warmup of %d steps is longer than the %d training steps", e.Optimizer.Schedule.WarmupSteps, c.steps())
	}
	if len(c.diags) == 0 {
		c.checkSparsity()
	}
	if c.contrastive() {
		c.checkContrastive()
	}
	c.checkMoE()
	return c.diags
}

// CheckMemory refuses a plan whose arena plus data would not fit in limit
// bytes, before anything is allocated. The diagnostic points at the model and
// gives the estimate.
func CheckMemory(p *ir.Plan, src interface{ Pos(string) diag.Range }, limit int64) diag.List {
	dataBytes := int64(p.Data.TrainN+p.Data.EvalN) * int64(p.Data.Features) * 4
	need := p.Memory.ArenaBytes + dataBytes
	if limit <= 0 || need <= limit {
		return nil
	}
	d := diag.Errorf(src.Pos("model.hidden"), "model.hidden", "E-COMPILE-MEMORY",
		"model needs about %s of memory, more than the %s available", HumanBytes(need), HumanBytes(limit))
	d.Detail = fmt.Sprintf("estimate: parameters and optimizer state %s, step inputs %s, activations and gradients %s (after reuse), data %s\nreduce model.hidden or dataset.batch",
		HumanBytes(p.Memory.PersistentBytes), HumanBytes(p.Memory.InputBytes), HumanBytes(p.Memory.TempBytes), HumanBytes(dataBytes))
	return diag.List{d}
}

// HumanBytes prints a byte count with a binary unit.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
