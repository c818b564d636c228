package lowering

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cuda/codegen"
)

// cudaLaunch records, for a plan built for the CUDA target, the generator's
// choices for every kernel (the GEMM tile, grid and block shapes) in
// Kernel.Launch. They are part of the plan, so they show up in its golden
// file and hash-identical builds launch identically; the choices themselves
// live with the code generator (codegen.Choose), which knows the variants.
func cudaLaunch(u *Unit) (bool, error) {
	changed := false
	for pi := range u.Plan.Programs {
		pr := &u.Plan.Programs[pi]
		for i := range pr.Kernels {
			k := &pr.Kernels[i]
			if !codegen.Has(k.Op) {
				return false, fmt.Errorf("kernel %s of program %s: the cuda backend has no kernel for op %q", k.Name, pr.Name, k.Op)
			}
			if a := codegen.Choose(u.Plan, k); len(a) > 0 {
				k.Launch = a
				changed = true
			}
		}
	}
	return changed, nil
}
