//go:build !linux

package cuda

import (
	"errors"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/ir"
)

// Backend is unavailable off Linux: the driver bindings load libcuda.so.
type Backend struct{}

// New reports that the cuda backend needs Linux.
func New() (*Backend, error) {
	return nil, errors.New("cuda backend: only supported on Linux (it loads libcuda.so.1 and libnvrtc at run time); use --backend cpu")
}

func (*Backend) Name() string                        { return "cuda" }
func (*Backend) Capabilities() backends.Capabilities { return backends.Capabilities{} }
func (*Backend) Prepare(*ir.Plan) (backends.Executable, error) {
	return nil, errors.New("cuda backend: only supported on Linux")
}
