package cpu

import (
	"sort"

	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// kernel is a prepared launch: bound to its buffers and attributes at
// Prepare time, so that run does no lookups and allocates nothing.
type kernel interface {
	run() error
}

// kernelDef is one row of the kernel table.
type kernelDef struct {
	build func(b *binder) (kernel, error)
	// inPlace: an output may be the very same buffer range as an input
	// (the optimizers update weights this way). Kernels marked so read every
	// input element before writing the output element at the same index.
	// Any other overlap between an output and an input or another output is
	// rejected at Prepare time.
	inPlace bool
}

var kernelTable = map[string]kernelDef{}

func register(op string, inPlace bool, build func(b *binder) (kernel, error)) {
	if _, dup := kernelTable[op]; dup {
		panic("cpu: kernel registered twice: " + op)
	}
	kernelTable[op] = kernelDef{build: build, inPlace: inPlace}
}

// Ops lists the ops the CPU backend has kernels for, sorted.
func Ops() []string {
	out := make([]string, 0, len(kernelTable))
	for op := range kernelTable {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

// binder hands a kernel builder its buffers. Types were checked against the
// op table before the builder runs, so builders may trust ranks and sizes.
type binder struct {
	x    *Executable
	k    *ir.Kernel
	pool *pool.Pool
}

func (b *binder) inType(i int) ir.Type  { return b.x.plan.Buffers[b.k.Ins[i]].Type }
func (b *binder) outType(i int) ir.Type { return b.x.plan.Buffers[b.k.Outs[i]].Type }
func (b *binder) in(i int) []float32    { return b.x.f32[b.k.Ins[i]] }
func (b *binder) inI32(i int) []int32   { return b.x.i32[b.k.Ins[i]] }
func (b *binder) out(i int) []float32   { return b.x.f32[b.k.Outs[i]] }
func (b *binder) attrs() ir.Attrs       { return b.k.Attrs }
func (b *binder) workers() int          { return b.pool.Workers() }

// float32 attribute with a default.
func (b *binder) f32Attr(name string, def float64) float32 {
	return float32(b.k.Attrs.Float(name, def))
}

// chunks cuts n units of work into tasks of contiguous units. It is the cost
// model every kernel uses: a task gets at least grain units (so a kernel
// smaller than grain runs on one worker, inline, without waking the pool),
// there are never more tasks than workers, and chunk boundaries fall on
// multiples of align units (16 floats = one cache line, so that two workers
// never write the same line).
type chunks struct {
	n, size, tasks int
}

func split(n, grain, workers, align int) chunks {
	if n <= 0 {
		return chunks{}
	}
	grain = max(grain, 1)
	tasks := min(max(workers, 1), (n+grain-1)/grain)
	size := (n + tasks - 1) / tasks
	size = (size + align - 1) / align * align
	return chunks{n: n, size: size, tasks: (n + size - 1) / size}
}

func (c chunks) bounds(task int) (lo, hi int) {
	lo = task * c.size
	return lo, min(lo+c.size, c.n)
}

// Work sizes (in float32 elements touched) below which a kernel runs on one
// worker. Waking the pool costs a few microseconds; 32K cheap element
// operations take about as long on one core.
const (
	grainCheap     = 32 << 10 // add, relu, copy-like loops
	grainExpensive = 4 << 10  // exp, log, tanh, gelu: ~10x the cost per element
	grainOptimizer = 16 << 10 // several streams per element
	lineFloats     = 16       // float32s per 64-byte cache line
)
