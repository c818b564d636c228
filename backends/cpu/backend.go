// Package cpu is expc's reference backend: it executes a plan's kernels in
// Go over one arena, in parallel on a persistent worker pool. Every kernel is
// bound to its buffers when the plan is prepared, so running a step allocates
// nothing and starts no goroutines.
package cpu

import (
	"runtime"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

func init() {
	backends.Register("cpu", func() (backends.Backend, error) {
		return New(runtime.GOMAXPROCS(0)), nil
	})
}

// Backend is the CPU backend. One Backend owns one worker pool; all
// executables it prepares share it (the pool runs one kernel at a time, so
// two executables running concurrently take turns kernel by kernel).
type Backend struct {
	pool  *pool.Pool
	owned bool // the pool is ours to close (not pool.Default)
}

// New returns a CPU backend using threads workers. threads <= 0 or equal to
// GOMAXPROCS shares the process-wide pool.Default.
func New(threads int) *Backend {
	if threads <= 0 || threads == runtime.GOMAXPROCS(0) {
		return &Backend{pool: pool.Default()}
	}
	return &Backend{pool: pool.New(threads), owned: true}
}

// Name is "cpu".
func (b *Backend) Name() string { return "cpu" }

// Capabilities lists the kernel table's ops and the worker count.
func (b *Backend) Capabilities() backends.Capabilities {
	return backends.Capabilities{Ops: Ops(), Threads: b.pool.Workers()}
}

// Prepare allocates the arena, initialises parameters and binds every kernel
// of every program. See Executable.
func (b *Backend) Prepare(plan *ir.Plan) (backends.Executable, error) {
	return b.prepare(plan)
}

// Close stops the backend's own worker pool (a no-op for the shared default
// pool). Executables prepared by b must not be run afterwards.
func (b *Backend) Close() {
	if b.owned {
		b.pool.Close()
	}
}
