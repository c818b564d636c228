//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cuda/fakecuda"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
)

// TestRunCUDAOnFakeDriver: `expc run --backend cuda` end to end through the
// fake CUDA driver and NVRTC (backends/cuda/fakecuda, selected by
// EXPC_LIBCUDA and EXPC_NVRTC): the run completes and writes its run
// directory, naming the cuda backend.
func TestRunCUDAOnFakeDriver(t *testing.T) {
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	libcuda, libnvrtc, err := fakecuda.Build(clang, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXPC_LIBCUDA", libcuda)
	t.Setenv("EXPC_NVRTC", libnvrtc)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.cue"), []byte(goodSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := expc(t, dir, "run", "--backend", "cuda", "--steps", "3", "s.cue")
	if code != 0 {
		t.Fatalf("run --backend cuda on the fake driver: exit %d\n%s", code, stderr)
	}
	sums, _ := filepath.Glob(filepath.Join(dir, "runs", "*", "summary.json"))
	if len(sums) != 1 {
		t.Fatalf("want one run directory with a summary.json, found %v\n%s", sums, stderr)
	}
	b, err := os.ReadFile(sums[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"backend": "cuda"`) && !strings.Contains(string(b), `"backend":"cuda"`) {
		t.Errorf("summary does not name the cuda backend:\n%s", b)
	}
}
