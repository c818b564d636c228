// Package backends is the interface every execution target implements. The
// CPU backend (backends/cpu) is the numerical reference; a CUDA backend
// joins through the same interface.
package backends

import (
	"fmt"
	"sort"

	"github.com/expc-dev/expc/ir"
)

// Capabilities say what a backend can run.
type Capabilities struct {
	Ops     []string // kernel ops it implements
	Threads int      // worker threads it uses
}

// Backend turns a plan into something that runs.
type Backend interface {
	Name() string
	Capabilities() Capabilities
	// Prepare allocates the arena, binds every kernel to its buffers and
	// initialises parameters from plan.Inits. All allocation happens here:
	// Executable.Run allocates nothing.
	Prepare(plan *ir.Plan) (Executable, error)
}

// Executable is a prepared plan.
type Executable interface {
	// Run executes one program ("train" or "eval") once.
	Run(program string) error
	// RunChecked executes a program and stops after the first kernel that
	// writes a NaN or Inf, returning its index (or -1 when all are finite).
	// It is slow and meant for diagnosing a bad step.
	RunChecked(program string) (kernel int, err error)
	// F32 and I32 view a buffer's storage in the arena (no copy).
	F32(buffer int) []float32
	I32(buffer int) []int32
	// SaveState and LoadState copy every persistent buffer (params and
	// state) out of and into the arena, in plan buffer order, as raw
	// little-endian bytes. SaveState appends to dst and returns it.
	SaveState(dst []byte) []byte
	LoadState(src []byte) error
	Close() error
}

var registry = map[string]func() (Backend, error){}

// Register makes a backend constructor available by name.
func Register(name string, ctor func() (Backend, error)) { registry[name] = ctor }

// Open returns the named backend.
func Open(name string) (Backend, error) {
	ctor, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown backend %q (available: %v)", name, Names())
	}
	return ctor()
}

// Names lists the registered backends.
func Names() []string {
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
