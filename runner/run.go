// Package runner executes a compiled plan: it loads the data, runs the
// training loop on a prepared backends.Executable, evaluates, and records
// the run in runs/<run-id>/ (spec, plan.json, metrics.jsonl, checkpoint.bin,
// summary.json).
//
// Step numbers in files and messages count completed steps (1-based: the
// first step is step 1). The train program's "step" input is the 0-based
// index of the step being run, i.e. the number of steps completed before it.
package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/uuid"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// PlanFile is the copy of the plan inside a run directory.
const PlanFile = "plan.json"

// Options configure Run.
type Options struct {
	RunsDir  string           // parent of run directories; default "runs"
	Steps    int              // > 0 overrides plan.Schedule.Steps
	SpecPath string           // the spec file, copied into the run dir as spec<ext> (may be empty)
	PlanJSON []byte           // the exact plan file bytes, written as plan.json (marshalled from the plan when nil)
	Progress io.Writer        // where progress goes; nil discards it
	Terminal bool             // a one-line bar redrawn in place, instead of plain lines every log_every steps
	Resume   string           // a run directory to continue from its checkpoint
	Now      func() time.Time // the clock; default time.Now
	// DataWorkers is how many goroutines make a contrastive step's views;
	// 0 picks (defaultDataWorkers). The views do not depend on it.
	DataWorkers int
}

// defaultDataWorkers: on the CPU backend one goroutine makes the views,
// as the kernels keep every thread busy; on a GPU the host is otherwise
// idle and augmenting views is what a contrastive step waits for, so up to
// eight share the work.
func defaultDataWorkers(backendName string) int {
	if backendName == "cpu" {
		return 1
	}
	return max(1, min(8, runtime.GOMAXPROCS(0)-1))
}

// trainer is one session of a run.
type trainer struct {
	plan  *ir.Plan
	exe   backends.Executable
	opts  Options
	train *ir.Program

	batch, steps, spe, logEvery, evalEvery int

	batcher *data.Batcher
	pf      feeder
	eval    evalRunner       // nil: no evaluation
	ctr     *contrastiveFeed // contrastive plans: views, second tower, ids
	masks   *maskRunner      // sparse-training plans: the mask program's schedule
	x       []float32        // arena views of the train program's bindings
	y       []int32
	stepIn  []int32
	loss    []float32
	lr      []float32

	resume  *Checkpoint
	runID   string
	dir     string
	metrics *metricsLog
	prog    *progress
	snaps   [2]snapshot // [0] newest
	recent  lossRing

	start, done       int // first step of this session; completed steps
	lastLR            float32
	started, segStart time.Time
	prevWall          float64 // wall seconds of earlier sessions
	trainSec          float64 // seconds in training steps, all sessions
	startTrainSec     float64 // trainSec when this session began
	logDone           int     // done at the last metrics line
	logTrainSec       float64 // trainSec at the last metrics line
	evalLoss, evalAcc float64
}

// Run trains plan on exe (prepared by the caller) and records the run. It
// returns the summary and the run directory. Errors before training (a bad
// plan, data that cannot be loaded, a checkpoint of another plan) leave
// nothing on disk and return a nil summary. A run that stops early because
// ctx was cancelled is "interrupted" and returns no error; a failed run
// (non-finite loss, backend error) writes its summary and returns it along
// with the error.
func Run(ctx context.Context, plan *ir.Plan, exe backends.Executable, backendName string, opts Options) (*Summary, string, error) {
	if opts.RunsDir == "" {
		opts.RunsDir = "runs"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.DataWorkers <= 0 {
		opts.DataWorkers = defaultDataWorkers(backendName)
	}
	t := &trainer{plan: plan, exe: exe, opts: opts}
	t.segStart = opts.Now()
	if err := t.setup(); err != nil {
		return nil, "", err
	}
	if err := t.open(backendName); err != nil {
		return nil, "", err
	}
	status, runErr := t.loop(ctx)
	t.prog.end()
	if status != StatusFailed {
		if err := t.checkpoint(); err != nil {
			status, runErr = StatusFailed, fmt.Errorf("writing the checkpoint: %w", err)
		}
	}
	if err := t.metrics.close(); err != nil && runErr == nil {
		status, runErr = StatusFailed, fmt.Errorf("writing %s: %w", MetricsFile, err)
	}
	sum := t.summary(backendName, status, runErr)
	if err := writeSummary(filepath.Join(t.dir, SummaryFile), sum); err != nil && runErr == nil {
		runErr = fmt.Errorf("writing %s: %w", SummaryFile, err)
	}
	PrintSummary(opts.Progress, sum, t.dir)
	return sum, t.dir, runErr
}

// setup checks the plan, reads the checkpoint when resuming and loads the
// data. It writes nothing.
func (t *trainer) setup() error {
	p := t.plan
	if t.train = p.Program("train"); t.train == nil {
		return errors.New(`plan: no "train" program`)
	}
	t.batch = p.Data.Batch
	f := p.Data.Features
	if t.batch <= 0 || f <= 0 {
		return fmt.Errorf("plan: batch %d and features %d must be positive", t.batch, f)
	}
	var err error
	if t.x, err = f32View(p, t.train, t.exe, "x", int64(t.inputRows())*int64(f)); err != nil {
		return err
	}
	if t.y, err = i32View(p, t.train, t.exe, "y", int64(t.inputRows())); err != nil {
		return err
	}
	if t.stepIn, err = i32View(p, t.train, t.exe, "step", 1); err != nil {
		return err
	}
	if t.loss, err = f32View(p, t.train, t.exe, "loss", 1); err != nil {
		return err
	}
	if t.lr, err = f32View(p, t.train, t.exe, "lr", 1); err != nil {
		return err
	}
	if t.opts.Resume != "" {
		if t.resume, err = ReadCheckpoint(filepath.Join(t.opts.Resume, CheckpointFile)); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		if t.resume.PlanHash != p.Hash {
			return fmt.Errorf("resume: the checkpoint in %s belongs to plan %s, not to plan %s (%s); resume with the plan it was made from (%s)",
				t.opts.Resume, short(t.resume.PlanHash), short(p.Hash), p.Name, filepath.Join(t.opts.Resume, PlanFile))
		}
	}
	set, err := t.loadData()
	if err != nil {
		return err
	}
	t.batcher = data.NewBatcher(set.Train, f, t.batch, p.Data.Shuffle, uint64(p.Schedule.Seed))
	if err := t.setupContrastive(set); err != nil {
		return err
	}
	if t.masks, err = newMaskRunner(p, t.exe); err != nil {
		return err
	}
	if t.spe = t.batcher.StepsPerEpoch(); t.spe == 0 {
		return fmt.Errorf("data: %d training examples are fewer than one batch of %d", set.Train.N, t.batch)
	}
	if s := p.Schedule.StepsPerEpoch; s > 0 && s != t.spe {
		return fmt.Errorf("data: %d steps per epoch, but the plan was built for %d; rebuild the plan", t.spe, s)
	}
	if t.steps = p.Schedule.Steps; t.opts.Steps > 0 {
		t.steps = t.opts.Steps
	}
	if t.steps <= 0 {
		return fmt.Errorf("plan: %d training steps", t.steps)
	}
	if t.logEvery = p.Schedule.LogEvery; t.logEvery <= 0 {
		t.logEvery = 50
	}
	if t.evalEvery = p.Schedule.EvalEvery; t.evalEvery <= 0 {
		t.evalEvery = t.spe
	}
	if ev := p.Program("eval"); ev != nil && set.Eval.N > 0 {
		if t.eval, err = t.newEval(ev, set); err != nil {
			return err
		}
	}
	if t.resume != nil {
		if t.resume.Step >= t.steps {
			return fmt.Errorf("resume: the checkpoint is at step %d of %d; nothing is left to run (ask for more steps)", t.resume.Step, t.steps)
		}
		t.start = t.resume.Step
	}
	t.done = t.start
	t.recent = lossRing{v: make([]float32, t.logEvery)}
	return nil
}

// loadData loads the plan's dataset and checks it against the plan's shapes.
func (t *trainer) loadData() (*data.Set, error) {
	p := t.plan
	var ds schema.Dataset
	if err := json.Unmarshal(p.Data.Dataset, &ds); err != nil {
		return nil, fmt.Errorf("plan: dataset: %w", err)
	}
	set, err := data.Load(ds, p.Data.SpecDir)
	if err != nil {
		return nil, err
	}
	m := set.Meta
	switch {
	case m.Features != p.Data.Features:
		return nil, fmt.Errorf("data: dataset %q has %d features, but the plan was built for %d; rebuild the plan", ds.Name, m.Features, p.Data.Features)
	case p.Data.Classes > 0 && m.Classes != p.Data.Classes:
		return nil, fmt.Errorf("data: dataset %q has %d classes, but the plan was built for %d; rebuild the plan", ds.Name, m.Classes, p.Data.Classes)
	case p.Data.TrainN > 0 && m.TrainN != p.Data.TrainN:
		return nil, fmt.Errorf("data: dataset %q has %d training examples, but the plan was built for %d; rebuild the plan", ds.Name, m.TrainN, p.Data.TrainN)
	}
	return set, nil
}

// open creates the run directory (or, resuming, loads the checkpoint's
// state) and opens the metrics log.
func (t *trainer) open(backendName string) (err error) {
	p := t.plan
	if t.resume != nil {
		t.dir = t.opts.Resume
		t.runID = filepath.Base(filepath.Clean(t.dir))
		if err := t.exe.LoadState(t.resume.State); err != nil {
			return fmt.Errorf("resume: loading the checkpoint's state: %w", err)
		}
		t.started, t.prevWall, t.trainSec = t.resume.Started, t.resume.WallSeconds, t.resume.TrainSeconds
		t.resume.State = nil
	} else {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		t.runID, t.started = id.String(), t.segStart
		t.dir = filepath.Join(t.opts.RunsDir, t.runID)
		if err := os.MkdirAll(t.opts.RunsDir, 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(t.dir, 0o755); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				os.RemoveAll(t.dir)
			}
		}()
		if err := t.writeInputs(); err != nil {
			return err
		}
	}
	if t.metrics, err = openMetrics(filepath.Join(t.dir, MetricsFile)); err != nil {
		return err
	}
	t.metrics.extras = metricOutputs(p, t.train, t.exe)
	t.startTrainSec, t.logTrainSec, t.logDone = t.trainSec, t.trainSec, t.done
	t.prog = newProgress(t.opts.Progress, t.opts.Terminal, t.steps)
	if t.resume != nil {
		t.prog.text(fmt.Sprintf("resuming run %s at step %d/%d\n", t.runID, t.start, t.steps))
	}
	t.prog.text(fmt.Sprintf("run %s: plan %s %s on %s, %d steps (%.2f epochs of %d), batch %d\n",
		t.runID, p.Name, p.ShortHash(), backendName, t.steps, float64(t.steps)/float64(t.spe), t.spe, t.batch))
	return nil
}

// writeInputs copies the spec and the plan into the run directory. When
// the spec file is not at hand (a plan was run, or the spec is a CUE
// package directory) the resolved spec the plan carries is written as
// spec.json instead.
func (t *trainer) writeInputs() error {
	if st, err := os.Stat(t.opts.SpecPath); t.opts.SpecPath != "" && err == nil && st.Mode().IsRegular() {
		b, err := os.ReadFile(t.opts.SpecPath)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(t.dir, "spec"+filepath.Ext(t.opts.SpecPath)), b); err != nil {
			return err
		}
	} else if len(t.plan.Spec) > 0 {
		var buf bytes.Buffer
		if err := json.Indent(&buf, t.plan.Spec, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		if err := writeFileAtomic(filepath.Join(t.dir, "spec.json"), buf.Bytes()); err != nil {
			return err
		}
	}
	pj := t.opts.PlanJSON
	if pj == nil {
		var err error
		if pj, err = json.MarshalIndent(t.plan, "", "  "); err != nil {
			return err
		}
	}
	return writeFileAtomic(filepath.Join(t.dir, PlanFile), pj)
}

// loop runs the remaining steps, evaluating on the way and at the end.
func (t *trainer) loop(ctx context.Context) (string, error) {
	t.pf = t.newFeeder(t.start)
	defer t.pf.Close()
	t.startSnapshots()
	for s := t.start; s < t.steps; s++ {
		if ctx.Err() != nil {
			return StatusInterrupted, nil
		}
		if err := t.trainStep(s); err != nil {
			return StatusFailed, err
		}
		if t.eval != nil && t.done%t.evalEvery == 0 && t.done != t.steps {
			if err := t.evaluate(); err != nil {
				return StatusFailed, err
			}
		}
	}
	if t.eval != nil {
		if err := t.evaluate(); err != nil {
			return StatusFailed, err
		}
	}
	return StatusCompleted, nil
}

// trainStep runs step s (0-based). It does not allocate.
func (t *trainer) trainStep(s int) error {
	t0 := t.opts.Now()
	if s%snapshotEvery == 0 && s != t.start {
		t.snapshot(s)
	}
	x, y := t.pf.Next()
	copy(t.x, x)
	copy(t.y, y)
	t.ctr.feed(x)
	if err := t.masks.before(t.exe, s); err != nil {
		return err
	}
	t.stepIn[0] = int32(s)
	if err := t.exe.Run("train"); err != nil {
		return fmt.Errorf("step %d: %w", s+1, err)
	}
	loss := t.loss[0]
	if !finite(float64(loss)) {
		return t.nonFinite(s, loss)
	}
	t.recent.add(loss)
	t.lastLR = t.lr[0]
	t.done = s + 1
	now := t.opts.Now()
	t.trainSec += now.Sub(t0).Seconds()
	tk := tick{done: t.done, epoch: t.epochs(), loss: t.recent.mean(), lr: t.lastLR, eta: -1}
	if done := t.done - t.start; done > 0 && t.trainSec > t.startTrainSec {
		perStep := (t.trainSec - t.startTrainSec) / float64(done)
		tk.sps, tk.eta = float64(t.batch)/perStep, perStep*float64(t.steps-t.done)
	}
	if t.done%t.logEvery == 0 || t.done == t.steps {
		tk.logged = true
		steps, sec := t.done-t.logDone, t.trainSec-t.logTrainSec
		tk.sps = 0
		if sec > 0 {
			tk.sps = float64(steps*t.batch) / sec
		}
		t.logDone, t.logTrainSec = t.done, t.trainSec
		if err := t.metrics.train(t.done, tk.epoch, float32(tk.loss), tk.lr, tk.sps, t.wall(now)); err != nil {
			return fmt.Errorf("writing %s: %w", MetricsFile, err)
		}
	}
	t.prog.step(now, tk)
	return nil
}

// evaluate runs the eval program over the evaluation split and records it.
func (t *trainer) evaluate() error {
	loss, acc, err := t.eval.run(t.exe)
	if err != nil {
		return fmt.Errorf("after step %d: %w", t.done, err)
	}
	t.evalLoss, t.evalAcc = loss, acc
	if err := t.metrics.eval(t.done, loss, acc); err != nil {
		return fmt.Errorf("writing %s: %w", MetricsFile, err)
	}
	if err := t.logRepresentation(); err != nil {
		return fmt.Errorf("writing %s: %w", MetricsFile, err)
	}
	t.prog.eval(t.done, loss, acc)
	return nil
}

func (t *trainer) checkpoint() error {
	return writeCheckpoint(filepath.Join(t.dir, CheckpointFile), &Checkpoint{
		PlanHash: t.plan.Hash, Step: t.done, Started: t.started,
		WallSeconds: t.wall(t.opts.Now()), TrainSeconds: t.trainSec,
		State: t.exe.SaveState(nil),
	})
}

func (t *trainer) summary(backendName, status string, err error) *Summary {
	now := t.opts.Now()
	s := &Summary{
		RunID: t.runID, Status: status,
		Plan:    PlanRef{Hash: t.plan.Hash, Name: t.plan.Name},
		Backend: backendName, Steps: t.done, TotalSteps: t.steps, Epochs: t.epochs(),
		WallSeconds: round(t.wall(now), 3),
		Final:       Final{TrainLoss: t.recent.mean(), EvalLoss: t.evalLoss, EvalAccuracy: t.evalAcc},
		Started:     formatTime(t.started), Finished: formatTime(now),
	}
	if err != nil {
		s.Error = err.Error()
	}
	if t.trainSec > 0 {
		s.SamplesPerSecond = round(float64(t.done*t.batch)/t.trainSec, 1)
	}
	return s
}

// wall is the run's wall time up to now, all sessions.
func (t *trainer) wall(now time.Time) float64 { return t.prevWall + now.Sub(t.segStart).Seconds() }

func (t *trainer) epochs() float64 { return float64(t.done) / float64(t.spe) }

// lossRing holds the most recent training losses.
type lossRing struct {
	v    []float32
	n, i int
}

func (r *lossRing) add(x float32) {
	r.v[r.i] = x
	r.i = (r.i + 1) % len(r.v)
	r.n = min(r.n+1, len(r.v))
}

// mean is the mean of the held losses (0 when none).
func (r *lossRing) mean() float64 {
	if r.n == 0 {
		return 0
	}
	var s float64
	for _, x := range r.v[:r.n] {
		s += float64(x)
	}
	return s / float64(r.n)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func short(hash string) string { return hash[:min(len(hash), 12)] }
