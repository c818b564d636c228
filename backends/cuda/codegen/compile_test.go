package codegen_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/pipeline"
)

// specsDir is the repository's specs/, from this package's directory.
const specsDir = "../../../specs"

func specFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(specsDir, func(p string, d os.DirEntry, err error) error {
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
		t.Fatal("no specs under specs/")
	}
	return out
}

// specPlans builds a spec for the cuda target, fused and -O0, so that both
// the fused kernels and the ops they replace are checked.
func specPlans(t *testing.T, spec string) []*ir.Plan {
	t.Helper()
	SkipPendingOps(t, spec)
	var plans []*ir.Plan
	for _, opt := range []int{1, 0} {
		res, diags := pipeline.Build(spec, pipeline.Options{Backend: "cuda", OptLevel: opt, MemoryLimit: -1})
		if diags.HasErrors() {
			t.Fatalf("build %s -O%d: %v", spec, opt, diags)
		}
		plans = append(plans, res.Plan)
	}
	return plans
}

// TestSpecsCompileToPTX: every kernel of every spec in specs/ compiles with
// clang-14 (sm_80) and clang-16 (sm_90), one translation unit per spec, and
// every entry point a launch names is in the PTX.
func TestSpecsCompileToPTX(t *testing.T) {
	for _, spec := range specFiles(t) {
		t.Run(strings.TrimPrefix(filepath.ToSlash(spec), specsDir+"/"), func(t *testing.T) {
			t.Parallel()
			plans := specPlans(t, spec)
			src, err := codegen.Source(plans...)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, p := range plans {
				u, err := codegen.Generate(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range u.Entries {
					want[e] = true
				}
			}
			for _, tg := range ptxcheck.Targets {
				t.Run(tg.Arch, func(t *testing.T) {
					ptx := ptxcheck.Compile(t, tg, filepath.Base(spec), src)
					have := ptxcheck.Entries(ptx)
					for e := range want {
						if !have[e] {
							t.Errorf("entry %s is launched but not in the PTX", e)
						}
					}
				})
			}
		})
	}
}

// TestAllCasesCompileToPTX: every kernel case (every op of the table and the
// variants that change the generated code, including ops no spec uses yet)
// compiles, as one translation unit.
func TestAllCasesCompileToPTX(t *testing.T) {
	var plans []*ir.Plan
	for _, c := range kerneltest.Cases() {
		p, err := c.Plan("cuda")
		if err != nil {
			t.Fatal(err)
		}
		p.Name = strings.NewReplacer(" ", "_", "=", "", "·", "x").Replace(c.Name)
		plans = append(plans, p)
	}
	src, err := codegen.Source(plans...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range ptxcheck.Targets {
		t.Run(tg.Arch, func(t *testing.T) { ptxcheck.Compile(t, tg, "cases", src) })
	}
}

// TestCasesCoverEveryKernel: the kernel cases exercise every op that has a
// CUDA kernel, so the compile check and the GPU check miss none.
func TestCasesCoverEveryKernel(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range kerneltest.Cases() {
		seen[c.Op] = true
	}
	for _, op := range codegen.Ops() {
		if !seen[op] {
			t.Errorf("no kerneltest case for op %s", op)
		}
	}
}

// SkipPendingOps skips a spec whose plans (fused or -O0, built for the CPU)
// use an op in codegen.Pending, naming the ops.
func SkipPendingOps(t *testing.T, spec string) {
	t.Helper()
	if ops := kerneltest.PendingOps(spec); len(ops) > 0 {
		t.Skipf("%s uses ops without a CUDA kernel yet (codegen.Pending): %v", spec, ops)
	}
}
