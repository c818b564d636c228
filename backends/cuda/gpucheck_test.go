//go:build linux

package cuda

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/runner"
	"github.com/expc-dev/expc/schema"
)

// TestOpenWithoutGPU: without an NVIDIA driver, New fails with a message
// that names what is missing (and never panics).
func TestOpenWithoutGPU(t *testing.T) {
	_, err := New()
	if err == nil {
		t.Skip("this machine has a working CUDA device")
	}
	msg := err.Error()
	if !strings.Contains(msg, "cuda backend") || !(strings.Contains(msg, "NVIDIA") || strings.Contains(msg, "NVRTC") || strings.Contains(msg, "CUDA device")) {
		t.Errorf("unclear error: %s", msg)
	}
	if _, err := backends.Open("cuda"); err == nil || err.Error() != msg {
		t.Errorf("backends.Open(\"cuda\") = %v, want the same error", err)
	}
}

// TestGPUCheck is the GPU machine's check (scripts/gpu-check.sh sets
// EXPC_GPU_CHECK=1): every kernel case on the CPU and CUDA backends on fresh
// random inputs (EXPC_GPU_CHECK_KERNELS=0 skips them), then 100 training
// steps (EXPC_GPU_CHECK_STEPS) of the MLP, contrastive, MoE and sparse specs
// on both, printed as one table.
func TestGPUCheck(t *testing.T) {
	if os.Getenv("EXPC_GPU_CHECK") == "" {
		t.Skip("set EXPC_GPU_CHECK=1 (scripts/gpu-check.sh) to run the GPU check")
	}
	gb, err := New()
	if err != nil {
		t.Fatal(err)
	}
	cb := cpu.New(0)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("EXPC_GPU_CHECK_SEED"), 10, 64); err == nil {
		seed = s
	}
	fmt.Printf("GPU check on %s, input seed %d (EXPC_GPU_CHECK_SEED reruns it)\n\n", gb.Device(), seed)
	failed := 0
	if os.Getenv("EXPC_GPU_CHECK_KERNELS") != "0" {
		failed = kernelTable(os.Stdout, kerneltest.Cases(), seed, cb, gb, true)
		fmt.Println()
	}
	steps := 100
	if n, err := strconv.Atoi(os.Getenv("EXPC_GPU_CHECK_STEPS")); err == nil && n > 0 {
		steps = n
	}
	fmt.Printf("%-40s %11s %11s %10s %12s %12s\n", fmt.Sprintf("training (%d steps)", steps), "cpu loss", "gpu loss", "rel.diff", "cpu samp/s", "gpu samp/s")
	for _, spec := range trainSpecs() {
		line, err := trainBoth(spec, steps, cb, gb)
		if err != nil {
			failed++
			fmt.Printf("%-40s ERROR %v\n", strings.TrimPrefix(spec, "../../specs/"), err)
			continue
		}
		fmt.Println(line)
	}
	if failed > 0 {
		t.Errorf("%d checks failed", failed)
	}
}

// kernelTable runs every case on cb and gb (each from inputs seeded by
// seed + its index), writes one row per case to w as it goes, and returns
// how many failed. timed adds the median times (the fake driver's test
// leaves them out: emulated kernels are slow).
func kernelTable(w io.Writer, cases []kerneltest.Case, seed uint64, cb, gb backends.Backend, timed bool) (failed int) {
	fmt.Fprintf(w, "%-40s %11s %9s %4s %12s %12s\n", "kernel", "rel.error", "tol", "ok", "cpu", "gpu")
	for i, c := range cases {
		row, err := checkCase(c, seed+uint64(i), cb, gb, timed)
		if err != nil {
			failed++
			fmt.Fprintf(w, "%-40s ERROR %v\n", c.Name, err)
			continue
		}
		ok := "ok"
		if !(row.err <= c.Tol) {
			ok, failed = "FAIL", failed+1
		}
		fmt.Fprintf(w, "%-40s %11.3g %9.1g %4s %12s %12s\n", c.Name, row.err, c.Tol, ok, row.cpu, row.gpu)
	}
	return failed
}

type caseRow struct {
	err      float64
	cpu, gpu time.Duration
}

// checkCase runs one case on both backends from the same inputs.
func checkCase(c kerneltest.Case, seed uint64, cb, gb backends.Backend, timed bool) (caseRow, error) {
	var row caseRow
	var outs [2][][]float32
	for bi, be := range []backends.Backend{cb, gb} {
		plan, err := c.Plan(be.Name())
		if err != nil {
			return row, err
		}
		x, err := be.Prepare(plan)
		if err != nil {
			return row, fmt.Errorf("%s: %w", be.Name(), err)
		}
		c.FillInputs(seed, x.F32, x.I32, plan)
		pr := &plan.Programs[0]
		if err := x.Run("train"); err != nil {
			x.Close()
			return row, fmt.Errorf("%s: %w", be.Name(), err)
		}
		for _, o := range pr.Outputs {
			v := x.F32(o.Buffer)
			if v == nil { // an i32 output
				for _, n := range x.I32(o.Buffer) {
					v = append(v, float32(n))
				}
			}
			outs[bi] = append(outs[bi], append([]float32(nil), v...))
		}
		var d time.Duration
		if timed {
			d, err = timeRuns(x)
		}
		x.Close()
		if err != nil {
			return row, err
		}
		if bi == 0 {
			row.cpu = d
		} else {
			row.gpu = d
		}
	}
	for i := range outs[0] {
		row.err = max(row.err, kerneltest.RelErr(outs[1][i], outs[0][i]))
	}
	return row, nil
}

// timeRuns is the median of a few runs: the kernel alone on the GPU
// (TimeKernels), the whole Run on the CPU.
func timeRuns(x backends.Executable) (time.Duration, error) {
	const reps = 7
	var ds []time.Duration
	for range reps {
		var d time.Duration
		if g, ok := x.(*Executable); ok {
			var err error
			if d, err = g.TimeKernels("train"); err != nil {
				return 0, err
			}
		} else {
			t0 := time.Now()
			if err := x.Run("train"); err != nil {
				return 0, err
			}
			d = time.Since(t0)
		}
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[reps/2], nil
}

// trainSpecs are the specs the check trains: the MLP and the first
// contrastive, MoE and sparse spec; EXPC_GPU_CHECK_SPECS=all trains every
// spec in those folders, and a comma-separated list of paths under specs/
// (sparse/gradual.cue,moe/mlp.cue) trains those.
func trainSpecs() []string {
	const root = "../../specs"
	switch sel := os.Getenv("EXPC_GPU_CHECK_SPECS"); sel {
	case "", "all":
		out := []string{root + "/fmnist/mlp.cue"}
		for _, dir := range []string{"contrastive", "moe", "sparse"} {
			m, _ := filepath.Glob(filepath.Join(root, dir, "*.cue"))
			if len(m) > 0 && sel == "" {
				m = m[:1]
			}
			out = append(out, m...)
		}
		return out
	default:
		var out []string
		for _, p := range strings.Split(sel, ",") {
			out = append(out, root+"/"+strings.TrimSpace(p))
		}
		return out
	}
}

// trainBoth trains spec for the given steps on each backend from the same seed
// and compares the final training loss. Without Fashion-MNIST installed (the
// GPU machine has no network) a spec trains on Gaussian blobs of the same
// shape and split (60000 training and 10000 evaluation examples, so step
// schedules keep their meaning, with any contrastive views kept) instead,
// which the table says.
func trainBoth(spec string, steps int, cb, gb backends.Backend) (string, error) {
	exp, diags := schema.Load(spec)
	if diags.HasErrors() {
		return "", fmt.Errorf("%v", diags)
	}
	name := strings.TrimPrefix(spec, "../../specs/")
	if _, err := data.Meta(exp.Dataset, filepath.Dir(spec)); err != nil && exp.Dataset.Name == "fashion-mnist" {
		exp.Dataset = schema.Dataset{Name: "blobs", Batch: exp.Dataset.Batch, EvalBatch: exp.Dataset.EvalBatch, Views: exp.Dataset.Views,
			Shuffle: true, Normalize: true, EvalFraction: 1.0 / 7, Samples: 70000, Centers: 10, Dim: 784, Noise: 1}
		name += " (blobs)"
	}
	var loss [2]float64
	var sps [2]float64
	for bi, be := range []backends.Backend{cb, gb} {
		res, diags := pipeline.BuildExperiment(exp, filepath.Dir(spec), pipeline.Options{Backend: be.Name(), OptLevel: 1, MemoryLimit: -1})
		if diags.HasErrors() {
			return "", fmt.Errorf("%s: %v", be.Name(), diags)
		}
		x, err := be.Prepare(res.Plan)
		if err != nil {
			return "", fmt.Errorf("%s: %w", be.Name(), err)
		}
		dir, err := os.MkdirTemp("", "expc-gpucheck")
		if err != nil {
			return "", err
		}
		sum, _, err := runner.Run(context.Background(), res.Plan, x, be.Name(), runner.Options{RunsDir: dir, Steps: steps, PlanJSON: res.PlanJSON})
		x.Close()
		os.RemoveAll(dir)
		if err != nil {
			return "", fmt.Errorf("%s: %w", be.Name(), err)
		}
		loss[bi], sps[bi] = sum.Final.TrainLoss, sum.SamplesPerSecond
	}
	rel := math.Abs(loss[1]-loss[0]) / math.Max(math.Abs(loss[0]), 1e-12)
	return fmt.Sprintf("%-40s %11.5g %11.5g %10.2g %12.0f %12.0f", name, loss[0], loss[1], rel, sps[0], sps[1]), nil
}
