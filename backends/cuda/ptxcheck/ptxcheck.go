// Package ptxcheck compiles generated CUDA to PTX with Debian's clang (no
// CUDA SDK needed), for tests: for Ampere with clang-14 and Hopper with
// clang-16, failing on any unresolved .extern, which would never load.
// scripts/install-deps.sh installs both clangs; in CI (CI set) a missing
// clang fails the test, elsewhere it skips with a message saying so.
package ptxcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Target is one clang and the GPU it compiles for.
type Target struct {
	Clang, Arch, PTX string
}

// Targets: clang-14 stops at sm_86; sm_90 needs clang-16. Without the
// +ptxNN feature clang refuses the warp-shuffle builtins.
var Targets = []Target{
	{"clang-14", "sm_80", "+ptx70"},
	{"clang-16", "sm_90", "+ptx78"},
}

// NeedClang returns the path of a clang, failing in CI and skipping
// elsewhere when it is not installed.
func NeedClang(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " is not installed, so the generated CUDA cannot be compile-checked (scripts/install-deps.sh installs it: apt-get install clang-14 clang-16)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var externRE = regexp.MustCompile(`(?m)^\s*\.extern\b.*$`)

// Compile compiles src for tg and returns the PTX; it fails the test on a
// compiler error or an unresolved .extern.
func Compile(t testing.TB, tg Target, name, src string) string {
	t.Helper()
	clang := NeedClang(t, tg.Clang)
	dir := t.TempDir()
	in, out := filepath.Join(dir, name+".cu"), filepath.Join(dir, name+".ptx")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch="+tg.Arch, "-nocudainc", "-nocudalib",
		"-O2", "-Xclang", "-target-feature", "-Xclang", tg.PTX, "-Werror", "-S", in, "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: compiling %s failed: %v\n%s", tg.Clang, tg.Arch, name, err, firstLines(string(msg), 40))
	}
	ptx, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m := externRE.FindAllString(string(ptx), 5); len(m) > 0 {
		t.Fatalf("%s %s: the PTX of %s has unresolved externals (it would not load):\n%s", tg.Clang, tg.Arch, name, strings.Join(m, "\n"))
	}
	return string(ptx)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// Entries lists the .entry names of a PTX file.
func Entries(ptx string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`\.entry\s+([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(ptx, -1) {
		out[m[1]] = true
	}
	return out
}
