package kerneltest

import (
	"sort"

	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/pipeline"
)

// PendingOps lists the ops of a spec's plans (fused and -O0, built for the
// CPU, which has every kernel) that have no CUDA kernel yet
// (codegen.Pending). Tests skip such specs by name instead of failing.
func PendingOps(spec string) []string {
	set := map[string]bool{}
	for _, opt := range []int{1, 0} {
		res, diags := pipeline.Build(spec, pipeline.Options{Backend: "cpu", OptLevel: opt, MemoryLimit: -1})
		if diags.HasErrors() {
			continue // the caller's own build reports it
		}
		for _, pr := range res.Plan.Programs {
			for _, k := range pr.Kernels {
				if codegen.Pending[k.Op] {
					set[k.Op] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for op := range set {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}
