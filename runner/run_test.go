package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// run runs p on fe in a fresh runs directory under t.TempDir().
func run(t *testing.T, ctx context.Context, p *ir.Plan, fe *fakeExe, opts Options) (*Summary, string, error) {
	t.Helper()
	if opts.RunsDir == "" {
		opts.RunsDir = filepath.Join(t.TempDir(), "runs")
	}
	if opts.PlanJSON == nil {
		opts.PlanJSON = []byte(`{"plan":"bytes"}` + "\n")
	}
	return Run(ctx, p, fe, "fake", opts)
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func keys(m map[string]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func TestCompletedRun(t *testing.T) {
	p := testPlan(t, testDataset(), 40, 10, 0)
	fe := newFake(p)
	spec := filepath.Join(t.TempDir(), "exp.cue")
	if err := os.WriteFile(spec, []byte("name: \"blobs-linear\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, dir, err := run(t, context.Background(), p, fe, Options{SpecPath: spec, Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(filepath.Base(dir))
	if err != nil || id.Version() != 7 || sum.RunID != id.String() {
		t.Errorf("run dir %s: want a UUIDv7 named after the run id %s (%v)", dir, sum.RunID, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"checkpoint.bin", "metrics.jsonl", "plan.json", "spec.cue", "summary.json"}; !slices.Equal(names, want) {
		t.Errorf("run dir holds %v, want %v (no temporary files)", names, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "plan.json")); string(b) != "{\"plan\":\"bytes\"}\n" {
		t.Errorf("plan.json = %q, want the plan bytes", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "spec.cue")); !strings.Contains(string(b), "blobs-linear") {
		t.Errorf("spec.cue = %q", b)
	}

	// metrics.jsonl: training lines every 10 steps, eval lines at each
	// epoch end (15, 30) and at the end (40).
	var trainSteps, evalSteps []float64
	for _, m := range readLines(t, filepath.Join(dir, "metrics.jsonl")) {
		if _, ok := m["eval_loss"]; ok {
			if k := keys(m); !slices.Equal(k, []string{"eval_accuracy", "eval_loss", "step"}) {
				t.Errorf("eval line has %v", k)
			}
			evalSteps = append(evalSteps, m["step"].(float64))
			continue
		}
		if k := keys(m); !slices.Equal(k, []string{"elapsed_seconds", "epoch", "loss", "lr", "samples_per_second", "step"}) {
			t.Errorf("train line has %v", k)
		}
		if m["lr"].(float64) != float64(float32(0.1)) && m["lr"].(float64) != 0.1 {
			t.Errorf("lr = %v, want 0.1", m["lr"])
		}
		trainSteps = append(trainSteps, m["step"].(float64))
	}
	if !slices.Equal(trainSteps, []float64{10, 20, 30, 40}) || !slices.Equal(evalSteps, []float64{15, 30, 40}) {
		t.Errorf("metrics at train steps %v and eval steps %v, want [10 20 30 40] and [15 30 40]", trainSteps, evalSteps)
	}

	// summary.json: the documented fields.
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"run_id", "status", "plan", "backend", "steps", "epochs", "wall_seconds", "samples_per_second", "final", "started", "finished"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	if k := keys(raw["plan"].(map[string]any)); !slices.Equal(k, []string{"hash", "name"}) {
		t.Errorf("summary plan has %v", k)
	}
	if k := keys(raw["final"].(map[string]any)); !slices.Equal(k, []string{"eval_accuracy", "eval_loss", "train_loss"}) {
		t.Errorf("summary final has %v", k)
	}
	var got Summary
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusCompleted || got.Steps != 40 || got.Plan.Hash != p.Hash || got.Backend != "fake" ||
		got.Epochs != 40.0/15 || got.SamplesPerSecond <= 0 || got.WallSeconds <= 0 {
		t.Errorf("summary = %+v", got)
	}
	for _, s := range []string{got.Started, got.Finished} {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("time %q: %v", s, err)
		}
	}
	var mean float64
	for _, l := range fe.losses[30:40] {
		mean += float64(l) / 10
	}
	if math.Abs(got.Final.TrainLoss-mean) > 1e-9 {
		t.Errorf("final.train_loss = %v, want the mean of steps 31-40, %v", got.Final.TrainLoss, mean)
	}
	if got.Final.EvalAccuracy < 0.8 || got.Final.EvalLoss <= 0 || got.Final.EvalLoss > 1 {
		t.Errorf("blobs should be learnt: final = %+v", got.Final)
	}

	ck, err := ReadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Step != 40 || ck.PlanHash != p.Hash || !bytes.Equal(ck.State, fe.SaveState(nil)) {
		t.Errorf("checkpoint at step %d of plan %s", ck.Step, ck.PlanHash)
	}

	o := out.String()
	for _, want := range []string{"step 10/40  epoch 0.67  loss ", "eval @ step 15: loss ", "run " + sum.RunID + ": completed", "run dir     " + dir} {
		if !strings.Contains(o, want) {
			t.Errorf("progress lacks %q:\n%s", want, o)
		}
	}
}

func TestEvalIgnoresPadding(t *testing.T) {
	p := testPlan(t, testDataset(), 15, 5, 0)
	fe := newFake(p)
	sum, _, err := run(t, context.Background(), p, fe, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 120 evaluation examples in batches of 50: the fake counts rows with
	// label >= 0 only, so an accuracy over 120 is a multiple of 1/120.
	if c := sum.Final.EvalAccuracy * 120; math.Abs(c-math.Round(c)) > 1e-9 || sum.Final.EvalAccuracy > 1 {
		t.Errorf("eval accuracy %v is not a count over 120 examples", sum.Final.EvalAccuracy)
	}
}

func TestInterruptAndResume(t *testing.T) {
	ds := testDataset()
	p := testPlan(t, ds, 40, 10, 0)

	// Reference: an uninterrupted run.
	ref := newFake(p)
	if _, _, err := run(t, context.Background(), p, ref, Options{}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	fe := newFake(p)
	fe.afterRun = func(step int) {
		if step == 17 {
			cancel() // during the 18th step: it finishes, then the run stops
		}
	}
	runs := filepath.Join(t.TempDir(), "runs")
	sum, dir, err := run(t, ctx, p, fe, Options{RunsDir: runs})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != StatusInterrupted || sum.Steps != 18 || sum.Error != "" {
		t.Fatalf("summary = %+v, want interrupted after 18 steps", sum)
	}
	ck, err := ReadCheckpoint(filepath.Join(dir, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Step != 18 {
		t.Errorf("checkpoint at step %d, want 18", ck.Step)
	}
	if err := newFake(p).LoadState(ck.State); err != nil {
		t.Errorf("checkpoint state does not load: %v", err)
	}

	fresh := newFake(p)
	sum2, dir2, err := run(t, context.Background(), p, fresh, Options{RunsDir: runs, Resume: dir})
	if err != nil {
		t.Fatal(err)
	}
	if dir2 != dir || sum2.RunID != sum.RunID || sum2.Status != StatusCompleted || sum2.Steps != 40 || sum2.Started != sum.Started {
		t.Errorf("resumed summary = %+v in %s, want run %s completed at 40 in %s", sum2, dir2, sum.RunID, dir)
	}
	if fresh.trainRuns != 22 {
		t.Errorf("resume ran %d steps, want 22", fresh.trainRuns)
	}
	if !equalBits(fresh.f32[bufW], ref.f32[bufW]) || !equalBits(fresh.f32[bufB], ref.f32[bufB]) {
		t.Error("interrupted + resumed run ended with other weights than an uninterrupted one")
	}
	var trainSteps []float64
	for _, m := range readLines(t, filepath.Join(dir, MetricsFile)) {
		if _, ok := m["loss"]; ok {
			trainSteps = append(trainSteps, m["step"].(float64))
		}
	}
	if !slices.Equal(trainSteps, []float64{10, 20, 30, 40}) {
		t.Errorf("metrics.jsonl train steps %v, want [10 20 30 40] across both sessions", trainSteps)
	}
	if ents, _ := os.ReadDir(runs); len(ents) != 1 {
		t.Errorf("runs dir holds %d runs, want 1: resuming continues in the same run", len(ents))
	}

	// Resuming again has nothing left to do, unless more steps are asked for.
	if _, _, err := run(t, context.Background(), p, newFake(p), Options{RunsDir: runs, Resume: dir}); err == nil || !strings.Contains(err.Error(), "nothing is left") {
		t.Errorf("resuming a completed run: err = %v", err)
	}
	sum3, _, err := run(t, context.Background(), p, newFake(p), Options{RunsDir: runs, Resume: dir, Steps: 45})
	if err != nil || sum3.Steps != 45 {
		t.Errorf("extending a run: %+v, %v", sum3, err)
	}
}

func TestResumeOtherPlan(t *testing.T) {
	p := testPlan(t, testDataset(), 20, 10, 0)
	_, dir, err := run(t, context.Background(), p, newFake(p), Options{Steps: 5})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	q := testPlan(t, testDataset(), 20, 10, 0)
	q.Hash = "0123456789abcdef"
	_, _, err = run(t, context.Background(), q, newFake(q), Options{Resume: dir})
	if err == nil || !strings.Contains(err.Error(), "belongs to plan 3f9a1c2e4b7d, not to plan 0123456789ab") {
		t.Errorf("err = %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, SummaryFile)); !bytes.Equal(before, after) {
		t.Error("a refused resume changed the run")
	}
}

func TestNaN(t *testing.T) {
	for _, tc := range []struct {
		name            string
		nanAt, poisonAt int // 0-based step indices
		want            string
	}{
		{"mid", 142, -1, "loss is NaN at step 143; the first non-finite value was produced by kernel k1 (op softmax_xent_fused, from specs/test.cue:6:7, fused from [softmax_xent softmax_xent_grad])"},
		{"at snapshot", 200, -1, "loss is NaN at step 201; the first non-finite value was produced by kernel k1 (op softmax_xent_fused"},
		{"first step", 0, -1, "loss is NaN at step 1; the first non-finite value was produced by kernel k1 "},
		{"previous update", -1, 99, "loss is NaN at step 101; the first non-finite value was produced by kernel k2 (op sgd, from specs/test.cue:7:12) during step 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t, testDataset(), 300, 50, 0)
			fe := newFake(p)
			fe.nanAt, fe.poisonAt = tc.nanAt, tc.poisonAt
			sum, dir, err := run(t, context.Background(), p, fe, Options{})
			var le *LossError
			if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %s...", err, tc.want)
			}
			if tc.nanAt >= 0 && (!fe.checkedNaN || !fe.replayMatched) {
				t.Errorf("the replay did not reach step %d with the original state (checked %v)", tc.nanAt, fe.checkedSteps)
			}
			bad := max(tc.nanAt, tc.poisonAt+1)
			if sum == nil || sum.Status != StatusFailed || sum.Error != err.Error() || sum.Steps != bad {
				t.Fatalf("summary = %+v", sum)
			}
			var got Summary
			b, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
			if err := json.Unmarshal(b, &got); err != nil || got.Status != StatusFailed || got.Error != sum.Error {
				t.Errorf("summary.json = %s (%v)", b, err)
			}
			if _, err := os.Stat(filepath.Join(dir, CheckpointFile)); err == nil {
				t.Error("a failed run wrote a checkpoint of its broken state")
			}
		})
	}
}

func TestDataErrorCreatesNothing(t *testing.T) {
	ds := testDataset()
	p := testPlan(t, ds, 20, 10, 0)
	ds = schema.Dataset{Name: "csv", Train: "missing.csv", Batch: 32, Header: true, Features: 4, Classes: 3}
	p.Data.Dataset, _ = json.Marshal(ds)
	runs := filepath.Join(t.TempDir(), "runs")
	sum, dir, err := run(t, context.Background(), p, newFake(p), Options{RunsDir: runs})
	if err == nil || sum != nil || dir != "" {
		t.Fatalf("Run = %v, %q, %v; want an error", sum, dir, err)
	}
	if _, err := os.Stat(runs); !os.IsNotExist(err) {
		t.Errorf("the runs directory exists after a data error (%v)", err)
	}
}

func TestBadPlan(t *testing.T) {
	p := testPlan(t, testDataset(), 20, 10, 0)
	p.Programs[0].Outputs = p.Programs[0].Outputs[:1] // no "lr"
	_, _, err := run(t, context.Background(), p, newFake(p), Options{})
	if err == nil || !strings.Contains(err.Error(), `no binding "lr"`) {
		t.Errorf("err = %v", err)
	}
}

func TestTerminalProgress(t *testing.T) {
	p := testPlan(t, testDataset(), 30, 10, 0)
	var out bytes.Buffer
	if _, _, err := run(t, context.Background(), p, newFake(p), Options{Progress: &out, Terminal: true}); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	if !strings.Contains(o, "\r30/30 [########################]  epoch 2.00  loss ") || !strings.Contains(o, "\r\x1b[Keval @ step 15: ") ||
		!strings.Contains(o, "\x1b[K\neval @ step 30: ") {
		t.Errorf("terminal output:\n%q", o)
	}
	if strings.Contains(o, "step 10/30") {
		t.Error("plain lines on a terminal")
	}
}

func TestCheckpointFormat(t *testing.T) {
	c := &Checkpoint{PlanHash: "abc", Step: 7, Started: time.Unix(100, 5), WallSeconds: 1.5, TrainSeconds: 1.25, State: []byte{1, 2, 3}}
	b, _ := c.AppendBinary(nil)
	if !bytes.HasPrefix(b, []byte("EXPCCKPT")) {
		t.Fatalf("checkpoint starts %q", b[:8])
	}
	var d Checkpoint
	if err := d.UnmarshalBinary(b); err != nil || d.PlanHash != "abc" || d.Step != 7 || !d.Started.Equal(c.Started) ||
		d.WallSeconds != 1.5 || d.TrainSeconds != 1.25 || !bytes.Equal(d.State, c.State) {
		t.Fatalf("round trip: %+v, %v", d, err)
	}
	for name, bad := range map[string][]byte{
		"magic":     append([]byte("NOTCKPT!"), b[8:]...),
		"truncated": b[:len(b)-6],
		"corrupt":   append(append([]byte(nil), b[:len(b)-5]...), b[len(b)-5]^1, 0, 0, 0, 0),
		"version":   append(append([]byte("EXPCCKPT"), 9, 0, 0, 0), b[12:]...),
	} {
		if err := new(Checkpoint).UnmarshalBinary(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		p := testPlan(t, testDataset(), 10000, 1, 0) // a metrics line every step
		fe := newFake(p)
		tr := &trainer{plan: p, exe: fe, opts: Options{RunsDir: t.TempDir(), Now: time.Now, Progress: io.Discard, Terminal: terminal}}
		tr.segStart = time.Now()
		if err := tr.setup(); err != nil {
			t.Fatal(err)
		}
		if err := tr.open("fake"); err != nil {
			t.Fatal(err)
		}
		tr.pf = tr.batcher.Prefetcher(0)
		tr.startSnapshots()
		step := func(s int) {
			if err := tr.trainStep(s); err != nil {
				t.Fatal(err)
			}
		}
		step(0) // warm up
		n := allocsUnder(func() {
			for s := 1; s <= 600; s++ { // crosses six snapshots
				step(s)
			}
		}, "runner.(*trainer).trainStep")
		tr.pf.Close()
		tr.metrics.close()
		if n != 0 {
			t.Errorf("terminal=%v: 600 training steps allocate %d times", terminal, n)
		}
	}
}

// allocsUnder counts the heap allocations f makes below a function whose
// name contains fn. It counts every allocation, unlike AllocsPerRun, which
// rounds rare ones (once per snapshot, say) down to zero. The runtime's
// refills of its per-P cache of channel wait records (acquireSudog) are not
// counted: they are the runtime's, happen while its caches warm up, and
// depend on scheduling.
func allocsUnder(f func(), fn string) int64 {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	profile := func() map[[32]uintptr]int64 {
		for range 3 { // the profile lags up to two collections
			runtime.GC()
		}
		n, _ := runtime.MemProfile(nil, true)
		recs := make([]runtime.MemProfileRecord, n+100)
		n, _ = runtime.MemProfile(recs, true)
		out := map[[32]uintptr]int64{}
		for _, r := range recs[:n] {
			under, sudog := false, false
			frames := runtime.CallersFrames(r.Stack())
			for {
				fr, more := frames.Next()
				under = under || strings.Contains(fr.Function, fn)
				sudog = sudog || strings.HasSuffix(fr.Function, "runtime.acquireSudog")
				if !more {
					break
				}
			}
			if under && !sudog {
				out[r.Stack0] += r.AllocObjects
			}
		}
		return out
	}
	before := profile()
	f()
	var n int64
	for k, v := range profile() {
		n += v - before[k]
	}
	return n
}
