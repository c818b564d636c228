package runner_test

import (
	"context"
	"testing"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/runner"
	"github.com/expc-dev/expc/schema"
)

// TestRunFollowsMaskSchedule: the runner runs a sparse plan's mask program
// before the steps the plan lists, so the masks it ends with have the
// schedule's density (gradual pruning to 0.25 by step 20, on blobs), and
// training makes progress with them.
func TestRunFollowsMaskSchedule(t *testing.T) {
	const src = `name: "blobs-sparse"
dataset: {name: "blobs", batch: 50, dim: 16, centers: 4}
model: {kind: "mlp", hidden: [32, 32]}
method: sparsity: {density: 0.25, layers: ["fc1", "fc2"], schedule: {kind: "gradual", start: 4, end: 20, every: 4}}
train: {steps: 40, seed: 3}
`
	exp, l := schema.LoadBytes("s.cue", []byte(src))
	if l != nil {
		t.Fatal(l)
	}
	res, l := pipeline.BuildExperiment(exp, ".", pipeline.Options{OptLevel: 1, MemoryLimit: -1})
	if l != nil {
		t.Fatal(l)
	}
	be, err := backends.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := be.Prepare(res.Plan)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	sum, _, err := runner.Run(context.Background(), res.Plan, exe, "cpu", runner.Options{RunsDir: t.TempDir(), PlanJSON: res.PlanJSON})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != runner.StatusCompleted || sum.Final.EvalAccuracy < 0.5 {
		t.Errorf("summary %+v", sum)
	}
	for _, l := range res.Plan.Schedule.Masks.Layers {
		for _, b := range res.Plan.Buffers {
			if b.Name != l.Mask {
				continue
			}
			m := exe.F32(b.ID)
			kept := 0
			for _, v := range m {
				if v != 0 {
					kept++
				}
			}
			if want := ir.MaskKeep(len(m), 0.25); kept != want {
				t.Errorf("%s keeps %d of %d weights after the run, the schedule gives %d", l.Layer, kept, len(m), want)
			}
		}
	}
}
