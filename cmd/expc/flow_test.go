package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRunExplain walks the user's loop on a small synthetic spec:
// build writes a plan and records it, run trains the last build and writes
// the run directory, explain shows the passes and kernels.
func TestBuildRunExplain(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.cue"), []byte(goodSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := expc(t, dir, "build", "s.cue")
	if code != 0 {
		t.Fatalf("build failed: %s", stderr)
	}
	plan := strings.TrimSpace(out)
	if !strings.HasPrefix(plan, ".expc/plans/blobs-mlp-") {
		t.Fatalf("build printed %q", plan)
	}
	out, stderr, code = expc(t, dir, "run")
	if code != 0 {
		t.Fatalf("run failed: %s", stderr)
	}
	runDir := filepath.Join(dir, strings.TrimSpace(out))
	var sum struct {
		Status string `json:"status"`
		Steps  int    `json:"steps"`
		Plan   struct {
			Hash string `json:"hash"`
		} `json:"plan"`
		Final struct {
			EvalAccuracy float64 `json:"eval_accuracy"`
		} `json:"final"`
	}
	b, err := os.ReadFile(filepath.Join(runDir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status != "completed" || sum.Steps != 20 || !strings.Contains(plan, sum.Plan.Hash[:12]) {
		t.Fatalf("summary %+v for plan %s", sum, plan)
	}
	// The last build was run, so the run records the resolved spec the plan carries.
	for _, f := range []string{"spec.json", "plan.json", "metrics.jsonl", "checkpoint.bin"} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err != nil {
			t.Errorf("run dir lacks %s", f)
		}
	}
	out, _, code = expc(t, dir, "explain")
	if code != 0 || !strings.Contains(out, "passes") || !strings.Contains(out, "program train") || !strings.Contains(out, "arena") {
		t.Fatalf("explain output:\n%s", out)
	}
	// -O0 runs the required passes only: no fusion in the plan.
	if _, stderr, code := expc(t, dir, "build", "-O0", "s.cue"); code != 0 {
		t.Fatalf("build -O0: %s", stderr)
	}
	out, _, _ = expc(t, dir, "explain")
	if !strings.Contains(out, "-O0") || strings.Contains(out, "fuse-elementwise") || strings.Contains(out, "matmul_bias_act") {
		t.Fatalf("explain after -O0:\n%s", out)
	}
}

// TestConfigPrecedence: a flag beats EXPC_* variables, which beat the config
// file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.cue"), []byte(goodSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".expc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".expc", "config.yaml"), []byte("runs_dir: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(env []string, args ...string) string {
		cmd := exec.Command(expcBin, append([]string{"run"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run %v: %v", args, err)
		}
		return strings.SplitN(strings.TrimSpace(string(out)), "/", 2)[0]
	}
	if got := run(nil, "s.cue"); got != "from-file" {
		t.Errorf("config file: runs went to %q", got)
	}
	if got := run([]string{"EXPC_RUNS_DIR=from-env"}, "s.cue"); got != "from-env" {
		t.Errorf("environment: runs went to %q", got)
	}
	if got := run([]string{"EXPC_RUNS_DIR=from-env"}, "--runs-dir", "from-flag", "s.cue"); got != "from-flag" {
		t.Errorf("flag: runs went to %q", got)
	}
}
