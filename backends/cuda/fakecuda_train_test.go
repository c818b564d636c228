//go:build linux

package cuda

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/runner"
	"github.com/expc-dev/expc/schema"
)

// TestFakeDriverTrains trains a small spec for a few steps on the CPU and
// through the fake CUDA driver from the same seed: the training loss of
// every step agrees within 1e-4 relative, and both runs write their run
// directory.
func TestFakeDriverTrains(t *testing.T) {
	gb := openFake(t)
	const spec, steps = "../../specs/synthetic/blobs.cue", 5
	exp, diags := schema.Load(spec)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	exp.Train.LogEvery = 1
	var losses [2][]float64
	for bi, be := range []backends.Backend{cpu.New(1), gb} {
		res, diags := pipeline.BuildExperiment(exp, filepath.Dir(spec), pipeline.Options{Backend: be.Name(), OptLevel: 1, MemoryLimit: -1})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", be.Name(), diags)
		}
		x, err := be.Prepare(res.Plan)
		if err != nil {
			t.Fatalf("%s: %v", be.Name(), err)
		}
		sum, dir, err := runner.Run(context.Background(), res.Plan, x, be.Name(), runner.Options{RunsDir: t.TempDir(), Steps: steps, PlanJSON: res.PlanJSON})
		x.Close()
		if err != nil {
			t.Fatalf("%s: %v", be.Name(), err)
		}
		if sum.Backend != be.Name() {
			t.Errorf("summary backend %q, want %q", sum.Backend, be.Name())
		}
		losses[bi] = trainLosses(t, filepath.Join(dir, runner.MetricsFile))
	}
	t.Logf("cpu  losses %v\ncuda losses %v", losses[0], losses[1])
	if len(losses[0]) != steps || len(losses[1]) != steps {
		t.Fatalf("%d and %d logged steps, want %d each", len(losses[0]), len(losses[1]), steps)
	}
	for i := range losses[0] {
		c, g := losses[0][i], losses[1][i]
		if rel := math.Abs(g-c) / math.Max(math.Abs(c), 1e-12); !(rel <= 1e-4) {
			t.Errorf("step %d: cuda loss %.7g, cpu %.7g (rel. diff %.2g > 1e-4)", i+1, g, c, rel)
		}
	}
}

// trainLosses reads the training-loss lines of a metrics file.
func trainLosses(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"epoch"`) {
			continue
		}
		var m struct {
			Loss *float64 `json:"loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m.Loss != nil {
			out = append(out, *m.Loss)
		}
	}
	return out
}

// TestFakeDriverStateAndChecked covers the rest of the executable's
// driver use on a training plan: SaveState/LoadState round-trip through
// device memory, RunChecked finds no NaN in a healthy step and names the
// first kernel that writes one when an input is NaN, and a closed
// executable refuses to run.
func TestFakeDriverStateAndChecked(t *testing.T) {
	gb := openFake(t)
	exp, diags := schema.Load("../../specs/synthetic/blobs.cue")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	res, diags := pipeline.BuildExperiment(exp, "../../specs/synthetic", pipeline.Options{Backend: "cuda", OptLevel: 1, MemoryLimit: -1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	x, err := gb.Prepare(res.Plan)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	state := x.SaveState(nil)
	if len(state) == 0 {
		t.Fatal("no persistent state")
	}
	changed := append([]byte(nil), state...)
	for i := range changed {
		changed[i] ^= byte(i)
	}
	if err := x.LoadState(changed); err != nil {
		t.Fatal(err)
	}
	if got := x.SaveState(nil); string(got) != string(changed) {
		t.Fatal("SaveState after LoadState does not return the loaded state")
	}
	if err := x.LoadState(state); err != nil {
		t.Fatal(err)
	}
	ex := x.(*Executable)
	var train *ir.Program
	for i := range res.Plan.Programs {
		if res.Plan.Programs[i].Name == "train" {
			train = &res.Plan.Programs[i]
		}
	}
	if train == nil {
		t.Fatal("no train program")
	}
	var in []float32
	for _, b := range train.Inputs {
		if v := x.F32(b.Buffer); len(v) > 1 && in == nil {
			in = v
		}
		if v := x.I32(b.Buffer); v != nil {
			for i := range v {
				v[i] = 0 // a valid label
			}
		}
	}
	if in == nil {
		t.Fatal("the train program has no f32 input")
	}
	for i := range in {
		in[i] = float32(i%7) * 0.1
	}
	if bad, err := ex.RunChecked("train"); err != nil || bad != -1 {
		t.Fatalf("RunChecked on finite inputs = %d, %v; want -1, nil", bad, err)
	}
	in[0] = float32(math.NaN())
	if bad, err := ex.RunChecked("train"); err != nil || bad < 0 {
		t.Fatalf("RunChecked with a NaN input = %d, %v; want a kernel index", bad, err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Run("train"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close = %v, want an error saying it is closed", err)
	}
}
