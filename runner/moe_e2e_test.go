package runner_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends"
	_ "github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/runner"
	"github.com/expc-dev/expc/schema"
)

// End-to-end runs of the mixture-of-experts models: spec -> fused plan ->
// training on the CPU backend -> run directory.

func trainSpec(t *testing.T, name, src string) (*runner.Summary, string, *pipeline.Result) {
	t.Helper()
	exp, l := schema.LoadBytes(name, []byte(src))
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
	sum, dir, err := runner.Run(context.Background(), res.Plan, exe, "cpu", runner.Options{RunsDir: t.TempDir(), PlanJSON: res.PlanJSON})
	if err != nil {
		t.Fatal(err)
	}
	return sum, dir, res
}

// TestGaussianMoEReachesTheOracle is the seed's statistical setting: data
// from a softmax-gated mixture of 2 linear Gaussian experts, fitted by 4
// experts. With top-2 gating the model can express the truth (two experts
// always selected, the softmax over them the true gate) and its held-out
// NLL comes within 0.05 nats of the truth's; top-1 gating cannot mix two
// experts for one input and stays measurably worse.
func TestGaussianMoEReachesTheOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models")
	}
	spec := func(k int) string {
		return `name: "gmoe"
dataset: {name: "mixture_regression", samples: 20000, dim: 2, experts: 2, noise: 0.3, batch: 256, eval_fraction: 0.25, seed: 1}
model: {kind: "gaussian_moe", moe: {experts: 4, top_k: ` + string(rune('0'+k)) + `, load_balance: 0, z_loss: 0}}
loss: kind: "mixture_nll"
optimizer: {kind: "adamw", lr: 0.02, weight_decay: 0, schedule: {kind: "cosine"}}
train: {epochs: 30, seed: 1, log_every: 500}
`
	}
	top2, _, res := trainSpec(t, "gmoe2.cue", spec(2))
	top1, _, _ := trainSpec(t, "gmoe1.cue", spec(1))
	set, err := data.Load(res.Exp.Dataset, ".")
	if err != nil {
		t.Fatal(err)
	}
	truth, err := data.TrueMixture(res.Exp.Dataset)
	if err != nil {
		t.Fatal(err)
	}
	oracle := truth.OracleNLL(set.Eval)
	t.Logf("held-out NLL: oracle %.4f, top-2 %.4f (+%.4f), top-1 %.4f (+%.4f)",
		oracle, top2.Final.EvalLoss, top2.Final.EvalLoss-oracle, top1.Final.EvalLoss, top1.Final.EvalLoss-oracle)
	if gap := top2.Final.EvalLoss - oracle; gap > 0.05 {
		t.Errorf("top-2 model is %.4f nats above the oracle, want <= 0.05", gap)
	}
	if top1.Final.EvalLoss-top2.Final.EvalLoss < 0.05 {
		t.Errorf("top-1 gating (%.4f) is not measurably worse than top-2 (%.4f)", top1.Final.EvalLoss, top2.Final.EvalLoss)
	}
	// A regression has no accuracy: the summary says so (null), not 0%.
	if !math.IsNaN(top2.Final.EvalAccuracy) {
		t.Errorf("eval accuracy of a regression = %v, want NaN (null in summary.json)", top2.Final.EvalAccuracy)
	}
}

// TestMoETransformerLearnsTokens: a small transformer with an MoE layer
// trains on the synthetic token streams; its held-out next-token loss falls
// below the unigram baseline, and metrics.jsonl records the experts' load.
func TestMoETransformerLearnsTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a transformer")
	}
	sum, dir, res := trainSpec(t, "tok.cue", `name: "tok"
dataset: {name: "tokens", samples: 2048, seq_len: 16, vocab: 24, batch: 32}
model: {kind: "transformer", d_model: 32, layers: 2, heads: 2, ffn: 64, moe: {experts: 4, top_k: 2, hidden: 64, layers: [2]}}
optimizer: {kind: "adamw", lr: 0.005}
train: {steps: 150, seed: 1, log_every: 50}
`)
	set, err := data.Load(res.Exp.Dataset, ".")
	if err != nil {
		t.Fatal(err)
	}
	unigram := data.UnigramNLL(set)
	t.Logf("held-out next-token loss %.4f (accuracy %.3f), unigram baseline %.4f", sum.Final.EvalLoss, sum.Final.EvalAccuracy, unigram)
	if !(sum.Final.EvalLoss < unigram) {
		t.Errorf("eval loss %.4f is not below the unigram baseline %.4f", sum.Final.EvalLoss, unigram)
	}
	b, err := os.ReadFile(filepath.Join(dir, runner.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if _, ok := m["loss"]; ok {
			last = m
		}
	}
	load, ok := last["moe2.load"].([]any)
	if !ok || len(load) != 4 {
		t.Fatalf("no per-expert load in %v", last)
	}
	total := 0.0
	for _, v := range load {
		total += v.(float64)
	}
	if total != 32*16*2 {
		t.Errorf("load %v sums to %v, want tokens·k = %d", load, total, 32*16*2)
	}
	if d, ok := last["moe2.dropped"].(float64); !ok || d != 0 {
		t.Errorf("dropped = %v, want 0 (dropless)", last["moe2.dropped"])
	}
}
