package runner

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/ir"
)

// evaluator runs the "eval" program over the whole evaluation split.
// Batches are written straight into the program's input buffers; the rows
// of a partial last batch past the split's end get x = 0 and label -1, which
// the program ignores.
type evaluator struct {
	batches  *data.Eval
	batch    int
	x        []float32
	y        []int32
	loss     []float32
	correctF []float32 // "correct" is f32 ...
	correctI []int32   // ... or i32, as the plan says; neither without one
}

func newEvaluator(plan *ir.Plan, prog *ir.Program, exe backends.Executable, split data.Split) (*evaluator, error) {
	eb, f := plan.Data.EvalBatch, plan.Data.Features
	if eb <= 0 {
		eb = plan.Data.Batch
	}
	e := &evaluator{batches: data.EvalBatches(split, eb), batch: eb}
	var err error
	if e.x, err = f32View(plan, prog, exe, "x", int64(eb)*int64(f)); err != nil {
		return nil, err
	}
	if e.y, err = i32View(plan, prog, exe, "y", int64(eb)); err != nil {
		return nil, err
	}
	if e.loss, err = f32View(plan, prog, exe, "loss", 1); err != nil {
		return nil, err
	}
	switch b := buffer(plan, prog.Binding("correct")); {
	case b == nil: // no accuracy: a regression model
	case b.Type.DType == ir.I32:
		e.correctI, err = i32View(plan, prog, exe, "correct", 1)
	default:
		e.correctF, err = f32View(plan, prog, exe, "correct", 1)
	}
	return e, err
}

// run evaluates the whole split: the mean loss over its examples and the
// fraction classified correctly (NaN when the model has no accuracy).
func (e *evaluator) run(exe backends.Executable) (loss, acc float64, err error) {
	var sum, correct float64
	total := 0
	for i := range e.batches.Len() {
		x, y, n := e.batches.Batch(i)
		copy(e.x, x)
		copy(e.y, y)
		for j := n; j < e.batch; j++ {
			e.y[j] = -1
		}
		if err := exe.Run("eval"); err != nil {
			return 0, 0, fmt.Errorf("evaluation batch %d: %w", i, err)
		}
		sum += float64(e.loss[0]) * float64(n)
		switch {
		case e.correctI != nil:
			correct += float64(e.correctI[0])
		case e.correctF != nil:
			correct += float64(e.correctF[0])
		default:
			correct = math.NaN()
		}
		total += n
	}
	if total == 0 {
		return 0, 0, nil
	}
	return sum / float64(total), correct / float64(total), nil
}

// f32View returns the arena view of a program's f32 binding, checking its
// type and that it holds elems values.
func f32View(plan *ir.Plan, prog *ir.Program, exe backends.Executable, name string, elems int64) ([]float32, error) {
	if err := checkBinding(plan, prog, name, ir.F32, elems); err != nil {
		return nil, err
	}
	v := exe.F32(prog.Binding(name))
	if int64(len(v)) < elems {
		return nil, fmt.Errorf("backend: buffer for %s.%s has %d values, want %d", prog.Name, name, len(v), elems)
	}
	return v[:elems:elems], nil
}

func i32View(plan *ir.Plan, prog *ir.Program, exe backends.Executable, name string, elems int64) ([]int32, error) {
	if err := checkBinding(plan, prog, name, ir.I32, elems); err != nil {
		return nil, err
	}
	v := exe.I32(prog.Binding(name))
	if int64(len(v)) < elems {
		return nil, fmt.Errorf("backend: buffer for %s.%s has %d values, want %d", prog.Name, name, len(v), elems)
	}
	return v[:elems:elems], nil
}

func checkBinding(plan *ir.Plan, prog *ir.Program, name string, dt ir.DType, elems int64) error {
	b := buffer(plan, prog.Binding(name))
	if b == nil {
		return fmt.Errorf("plan: program %q has no binding %q", prog.Name, name)
	}
	t := b.Type
	if t.DType != dt || t.Shape.Elems() != elems {
		return fmt.Errorf("plan: %s.%s is %s, want %s with %d elements", prog.Name, name, t, dt, elems)
	}
	return nil
}

// buffer returns the plan buffer with the given id, or nil.
func buffer(plan *ir.Plan, id int) *ir.Buffer {
	if id >= 0 && id < len(plan.Buffers) && plan.Buffers[id].ID == id {
		return &plan.Buffers[id]
	}
	for i := range plan.Buffers {
		if plan.Buffers[i].ID == id {
			return &plan.Buffers[i]
		}
	}
	return nil
}
