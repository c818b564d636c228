package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCUDAWithoutGPU: on a machine without an NVIDIA driver, running on
// the cuda backend (by flag, or from a plan built for it) fails with a
// message saying why and writes nothing: no plan, no run directory.
func TestRunCUDAWithoutGPU(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.cue"), []byte(goodSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := expc(t, dir, "run", "--backend", "cuda", "--steps", "2", "s.cue")
	if code == 0 {
		t.Skip("this machine has a working CUDA backend")
	}
	for _, want := range []string{"cuda backend", "NVIDIA", "--backend cpu"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("a crash, not a diagnostic:\n%s", stderr)
	}
	assertEmpty(t, dir, "s.cue")

	// A plan built for cuda (building needs no GPU) fails the same way.
	if _, stderr, code := expc(t, dir, "build", "--backend", "cuda", "s.cue"); code != 0 {
		t.Fatalf("build --backend cuda: exit %d\n%s", code, stderr)
	}
	_, stderr, code = expc(t, dir, "run", "--steps", "2")
	if code == 0 || !strings.Contains(stderr, "cuda backend") {
		t.Errorf("run of a cuda plan: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); !os.IsNotExist(err) {
		t.Errorf("a runs directory was created: %v", err)
	}
}

// assertEmpty fails if dir holds anything but the named files.
func assertEmpty(t *testing.T, dir string, keep ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !contains(keep, e.Name()) {
			t.Errorf("%s was written", e.Name())
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBuildsWithoutCgo: the CUDA backend binds the driver with purego, so
// expc still builds with CGO_ENABLED=0 (the binary carried to GPU machines).
func TestBuildsWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds expc again; skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "expc")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/expc: %v\n%s", err, msg)
	}
	if msg, err := exec.Command(out, "version").CombinedOutput(); err != nil {
		t.Fatalf("the cgo-free expc does not run: %v\n%s", err, msg)
	}
}
