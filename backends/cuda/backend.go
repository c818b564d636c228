// Package cuda is expc's GPU backend: it generates CUDA C++ for a plan
// (backends/cuda/codegen), compiles it with NVRTC for the device's compute
// capability and launches it through the CUDA driver API. Both libraries are
// loaded at run time (purego), so expc builds with CGO_ENABLED=0 and no CUDA
// headers, and a machine without a GPU gets a clear error from Open/New
// instead of a crash.
//
// One goroutine, locked to its OS thread, owns the CUDA context and makes
// every CUDA call. The executable keeps a host mirror of the arena: F32 and
// I32 view the mirror; Run uploads the program's input bindings before its
// kernels and downloads its output bindings after them; SaveState and
// LoadState move the persistent buffers.
package cuda

import (
	"fmt"

	"github.com/expc-dev/expc/backends"
)

func init() {
	backends.Register("cuda", func() (backends.Backend, error) {
		b, err := New()
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// Error is a failed CUDA driver call.
type Error struct {
	Call string // the driver function
	Code int    // its CUresult
	Name string // e.g. CUDA_ERROR_NO_DEVICE
	Desc string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("cuda: %s failed: error %d", e.Call, e.Code)
	if e.Name != "" {
		s += " " + e.Name
	}
	if e.Desc != "" {
		s += " (" + e.Desc + ")"
	}
	return s
}
