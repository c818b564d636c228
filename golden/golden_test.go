// Package golden pins the lowered plans of every spec in specs/: one text
// file per spec and backend. A compiler change that alters a plan shows up
// as a reviewable diff. Rewrite them with `go test ./golden -update` (or
// EXPC_UPDATE=1); nothing else writes them.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// backendsUnderTest are the targets every spec is pinned for.
var backendsUnderTest = []string{"cpu", "cuda"}

// variants are the optimisation settings pinned per spec: the default
// pipeline and -O0 (unfused), so fusions show up as a diff between them.
var variants = []struct {
	suffix string
	opts   pipeline.Options
}{
	{"", pipeline.Options{OptLevel: 1}},
	{".O0", pipeline.Options{OptLevel: 0}},
}

// TestMain runs from the repository root so that spec paths (and the
// positions printed in plans) read "specs/...", as a user would see them.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func specs(t *testing.T) []string {
	var out []string
	err := filepath.WalkDir("specs", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".cue") || strings.HasSuffix(p, ".hcl")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no specs found under specs/")
	}
	return out
}

func goldenName(spec, backend, suffix string) string {
	rel := strings.TrimPrefix(filepath.ToSlash(spec), "specs/")
	rel = strings.TrimSuffix(rel, filepath.Ext(rel))
	return filepath.Join("golden", "testdata", strings.ReplaceAll(rel, "/", "_")+"."+backend+suffix+".plan.txt")
}

func TestGoldenPlans(t *testing.T) {
	doUpdate := *update || os.Getenv("EXPC_UPDATE") == "1"
	for _, spec := range specs(t) {
		for _, backend := range backendsUnderTest {
			for _, v := range variants {
				name := goldenName(spec, backend, v.suffix)
				t.Run(filepath.Base(name), func(t *testing.T) {
					if backend == "cuda" {
						if ops := kerneltest.PendingOps(spec); len(ops) > 0 {
							t.Skipf("%s uses ops without a CUDA kernel yet (codegen.Pending): %v", spec, ops)
						}
					}
					opts := v.opts
					opts.Backend = backend
					opts.MemoryLimit = -1 // golden plans do not depend on this machine's memory
					res, diags := pipeline.Build(spec, opts)
					if diags.HasErrors() {
						t.Fatalf("build %s: %v", spec, diags)
					}
					got := ir.PrintPlan(res.Plan)
					if doUpdate {
						if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(name, []byte(got), 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					want, err := os.ReadFile(name)
					if err != nil {
						t.Fatalf("missing golden file %s (run `go test ./golden -update` and review the result): %v", name, err)
					}
					if string(want) != got {
						t.Errorf("plan for %s (%s%s) differs from %s; if the change is intended, run `go test ./golden -update` and review the diff.\n%s",
							spec, backend, v.suffix, name, firstDiff(string(want), got))
					}
				})
			}
		}
	}
}

// firstDiff shows the first differing line with a little context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + a + "\n  got:  " + b
		}
	}
	return "(no line differs; trailing newline?)"
}
