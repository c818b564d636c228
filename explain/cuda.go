package explain

import (
	"io"

	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/ir"
)

func init() { Formats["cuda"] = CUDA }

// CUDA prints the plan's generated CUDA translation unit (`expc explain
// --format cuda`): the source NVRTC compiles, then the launches of each
// program as comments. A plan built for another target gets the CUDA
// target's default kernel choices.
func CUDA(w io.Writer, p *ir.Plan, _ *ir.Timings) error {
	u, err := codegen.Generate(p)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, u.Source)
	return err
}
