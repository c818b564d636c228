package runner

import (
	"encoding/json"
	"fmt"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// Contrastive plans (plan.Contrastive != nil) train on two views of every
// example, made by data.Views in a background goroutine, and evaluate the
// frozen representation with a linear probe and kNN (probe.go).

// feeder hands the training loop the inputs of each step.
type feeder interface {
	Next() (x []float32, y []int32)
	Close()
}

// evalRunner evaluates the model: the mean loss and the accuracy.
type evalRunner interface {
	run(exe backends.Executable) (loss, acc float64, err error)
}

// contrastiveFeed copies what the train program reads beyond x and y: the
// second tower's rows (x2) and the examples' indices (ids). A nil feed does
// nothing.
type contrastiveFeed struct {
	views *data.Views
	pf    *data.ViewPrefetcher
	x2    []float32
	ids   []int32
}

// inputRows is the number of rows of the train program's x and y.
func (t *trainer) inputRows() int {
	if c := t.plan.Contrastive; c != nil {
		return c.Rows
	}
	return t.batch
}

// setupContrastive binds x2 and ids and makes the view generator.
func (t *trainer) setupContrastive(set *data.Set) error {
	p, c := t.plan, t.plan.Contrastive
	if c == nil {
		return nil
	}
	var ds schema.Dataset
	if err := json.Unmarshal(p.Data.Dataset, &ds); err != nil {
		return fmt.Errorf("plan: dataset: %w", err)
	}
	if ds.Views == nil {
		return fmt.Errorf("plan: a contrastive plan without dataset.views; rebuild the plan")
	}
	f := &contrastiveFeed{}
	var err error
	if f.views, err = data.NewViews(set.Train, p.Data.Features, t.batch, p.Data.Shuffle, uint64(p.Schedule.Seed), *ds.Views, set.Norm); err != nil {
		return err
	}
	if c.Dual {
		if f.x2, err = f32View(p, t.train, t.exe, "x2", int64(t.batch)*int64(p.Data.Features)); err != nil {
			return err
		}
	}
	if c.IDs {
		if f.ids, err = i32View(p, t.train, t.exe, "ids", int64(c.Rows)); err != nil {
			return err
		}
	}
	t.ctr = f
	return nil
}

func (t *trainer) newFeeder(start int) feeder {
	if t.ctr != nil {
		t.ctr.pf = t.ctr.views.Prefetcher(start, t.opts.DataWorkers)
		return t.ctr.pf
	}
	return t.batcher.Prefetcher(start)
}

// feed copies the second views and the ids of the step whose rows are x.
func (f *contrastiveFeed) feed(x []float32) {
	if f == nil {
		return
	}
	if f.x2 != nil {
		copy(f.x2, x[len(x)/2:])
	}
	if f.ids != nil {
		copy(f.ids, f.pf.IDs())
	}
}

func (t *trainer) newEval(ev *ir.Program, set *data.Set) (evalRunner, error) {
	if t.plan.Contrastive != nil {
		return newProbeEvaluator(t.plan, ev, t.exe, set)
	}
	return newEvaluator(t.plan, ev, t.exe, set.Eval)
}

// logRepresentation writes the probe's metrics line after an evaluation.
func (t *trainer) logRepresentation() error {
	pe, ok := t.eval.(*probeEvaluator)
	if !ok {
		return nil
	}
	return t.metrics.representation(t.done, pe.last)
}
