package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/runner"
)

const contrastiveSpec = `name: "blobs-simclr"
dataset: {name: "blobs", batch: 40, samples: 800, dim: 8, centers: 4, views: {noise: 0.3}}
model: {kind: "mlp", hidden: [32, 16], projection: [16, 8]}
loss: {
	kind:        "contrastive"
	objective:   "nt_xent"
	temperature: {value: 0.3}
	probe: {epochs: 5}
}
optimizer: {kind: "adamw", lr: 0.003}
train: {steps: 30, seed: 2, log_every: 10}
`

// TestContrastiveDiagnostics: combinations the compiler rejects, at the
// field that causes them.
func TestContrastiveDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, code, path string
	}{
		{"supcon with hard negatives", `objective:   "nt_xent"`, `objective: "supcon", negatives: {kind: "hard", k: 4}`, "E-COMPILE-LOSS", "loss.negatives.kind"},
		{"learnable tau with two towers", `objective:   "nt_xent"`, `objective: "dual_infonce", temperature: {kind: "learnable"}`, "E-COMPILE-LOSS", "loss.temperature.kind"},
		{"towers without dual", `objective:   "nt_xent"`, `objective: "nt_xent", towers: "separate"`, "E-COMPILE-LOSS", "loss.objective"},
		{"too many hard negatives", `objective:   "nt_xent"`, `objective: "nt_xent", negatives: {kind: "hard", k: 79}`, "E-COMPILE-LOSS", "loss.negatives.k"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(contrastiveSpec, tc.old, tc.new, 1)
			if strings.Contains(tc.new, "temperature") {
				src = strings.Replace(src, "temperature: {value: 0.3}\n", "", 1)
			}
			_, diags := Build(writeSpec(t, src), Options{OptLevel: 1, MemoryLimit: -1})
			if !diags.HasErrors() {
				t.Fatal("built without an error")
			}
			d := diags[0]
			if d.Code != tc.code || d.Path != tc.path || d.Range.Start.Line == 0 {
				t.Fatalf("got %s at %s (%v): %s; want %s at %s", d.Code, d.Path, d.Range, d.Summary, tc.code, tc.path)
			}
		})
	}
	// Schema errors: a misspelt key and a temperature <= 0.
	for _, src := range []string{
		strings.Replace(contrastiveSpec, "temperature: {value: 0.3}", "temprature: {value: 0.3}", 1),
		strings.Replace(contrastiveSpec, "temperature: {value: 0.3}", "temperature: {value: 0}", 1),
	} {
		if _, diags := Build(writeSpec(t, src), Options{OptLevel: 1, MemoryLimit: -1}); !diags.HasErrors() || diags[0].Range.Start.Line == 0 {
			t.Errorf("want a positioned schema error, got %v", diags)
		}
	}
}

// TestContrastiveFusedStepMatchesUnfused runs one training step of the
// whole model with and without fuse-contrastive, from the same parameters
// on the same views, and compares the loss and every updated parameter.
// Tolerance: 1e-5 relative on the loss, 1e-5 of each parameter's scale.
func TestContrastiveFusedStepMatchesUnfused(t *testing.T) {
	for _, obj := range []string{"nt_xent", "supcon", "dual_infonce"} {
		t.Run(obj, func(t *testing.T) {
			src := strings.Replace(contrastiveSpec, `"nt_xent"`, `"`+obj+`"`, 1)
			path := writeSpec(t, src)
			step := func(fuse bool) map[string][]float32 {
				opts := Options{OptLevel: 1, MemoryLimit: -1}
				if !fuse {
					opts.Disabled = []string{"fuse-contrastive"}
				}
				res := mustBuild(t, path, opts)
				fused := slices.ContainsFunc(res.Plan.Program("train").Kernels, func(k ir.Kernel) bool { return k.Op == "contrastive_xent_fused" })
				if fused != fuse {
					t.Fatalf("fuse=%v but fused kernel present=%v", fuse, fused)
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
				pr := res.Plan.Program("train")
				for _, in := range pr.Inputs {
					if b := res.Plan.Buffers[in.Buffer]; b.Type.DType == ir.F32 {
						x := exe.F32(in.Buffer)
						for i := range x {
							x[i] = float32(math.Sin(float64(i)*0.37 + 0.1))
						}
					} else if in.Name == "y" {
						y := exe.I32(in.Buffer)
						for i := range y {
							y[i] = int32(i % 20 % 4)
						}
					}
				}
				if err := exe.Run("train"); err != nil {
					t.Fatal(err)
				}
				out := map[string][]float32{"loss": slices.Clone(exe.F32(pr.Binding("loss")))}
				for _, b := range res.Plan.Buffers {
					if b.Kind == ir.BufParam {
						out[b.Name] = slices.Clone(exe.F32(b.ID))
					}
				}
				return out
			}
			want, got := step(false), step(true)
			for name, w := range want {
				g := got[name]
				var scale float64
				for _, v := range w {
					scale = max(scale, math.Abs(float64(v)))
				}
				for i := range w {
					if d := math.Abs(float64(g[i] - w[i])); d > 1e-5*scale+1e-6 {
						t.Fatalf("%s[%d]: fused %.8g, unfused %.8g", name, i, g[i], w[i])
					}
				}
			}
		})
	}
}

// TestContrastiveRun trains the small spec end to end and checks what the
// run records: a probe accuracy, and alignment and uniformity.
func TestContrastiveRun(t *testing.T) {
	res := mustBuild(t, writeSpec(t, contrastiveSpec), Options{OptLevel: 1, MemoryLimit: -1})
	be, err := backends.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := be.Prepare(res.Plan)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	sum, dir, err := runner.Run(context.Background(), res.Plan, exe, "cpu", runner.Options{RunsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Final.EvalAccuracy < 0.5 {
		t.Errorf("linear probe accuracy %.3f on 4 separable blobs", sum.Final.EvalAccuracy)
	}
	b, err := os.ReadFile(filepath.Join(dir, runner.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if _, ok := m["uniformity"]; ok {
			found = true
			for _, k := range []string{"alignment", "linear_accuracy", "knn_accuracy"} {
				if v, ok := m[k].(float64); !ok || math.IsNaN(v) {
					t.Errorf("metrics line %q: %s missing", line, k)
				}
			}
		}
	}
	if !found {
		t.Errorf("no alignment/uniformity line in %s", b)
	}
}

// TestContrastiveDataWorkers: splitting the making of views over several
// goroutines (as a GPU run does) trains exactly as one goroutine does.
func TestContrastiveDataWorkers(t *testing.T) {
	res := mustBuild(t, writeSpec(t, contrastiveSpec), Options{OptLevel: 1, MemoryLimit: -1})
	be, err := backends.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	for _, workers := range []int{1, 3} {
		exe, err := be.Prepare(res.Plan)
		if err != nil {
			t.Fatal(err)
		}
		sum, _, err := runner.Run(context.Background(), res.Plan, exe, "cpu", runner.Options{RunsDir: t.TempDir(), Steps: 12, DataWorkers: workers})
		exe.Close()
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, sum.Final.TrainLoss)
	}
	if losses[0] != losses[1] || math.IsNaN(losses[0]) {
		t.Errorf("final training loss %v with one view worker, %v with three", losses[0], losses[1])
	}
}
