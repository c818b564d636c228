package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/pipeline"
)

// TestGoldenCUDA pins the CUDA translation unit generated for every spec
// (built for the cuda target, default pipeline): golden/testdata/<spec>.cuda.cu.
// Rewritten only by `go test ./golden -update` (or EXPC_UPDATE=1).
func TestGoldenCUDA(t *testing.T) {
	doUpdate := *update || os.Getenv("EXPC_UPDATE") == "1"
	for _, spec := range specs(t) {
		name := strings.TrimSuffix(goldenName(spec, "cuda", ""), ".plan.txt") + ".cu"
		t.Run(filepath.Base(name), func(t *testing.T) {
			if ops := kerneltest.PendingOps(spec); len(ops) > 0 {
				t.Skipf("%s uses ops without a CUDA kernel yet (codegen.Pending): %v", spec, ops)
			}
			res, diags := pipeline.Build(spec, pipeline.Options{Backend: "cuda", OptLevel: 1, MemoryLimit: -1})
			if diags.HasErrors() {
				t.Fatalf("build %s: %v", spec, diags)
			}
			u, err := codegen.Generate(res.Plan)
			if err != nil {
				t.Fatalf("generating CUDA for %s: %v", spec, err)
			}
			if doUpdate {
				if err := os.WriteFile(name, []byte(u.Source), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(name)
			if err != nil {
				t.Fatalf("missing golden file %s (run `go test ./golden -update` and review the result): %v", name, err)
			}
			if string(want) != u.Source {
				t.Errorf("CUDA for %s differs from %s; if the change is intended, run `go test ./golden -update` and review the diff.\n%s",
					spec, name, firstDiff(string(want), u.Source))
			}
		})
	}
}
