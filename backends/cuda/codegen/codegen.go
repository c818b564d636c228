// Package codegen turns a plan into one self-contained CUDA C++ translation
// unit and the launches that run it. It is pure Go (no CUDA needed), so its
// output is golden-tested and compile-checked with clang on machines
// without a GPU; backends/cuda compiles the same source with NVRTC and
// launches it.
//
// The generator is a table keyed by op name (register, one file per kernel
// family): a generator looks at one plan kernel and emits the launches that
// compute it, naming entry points whose source it adds to the unit. Entry
// points are specialised by what must be known at compile time (activation,
// transposes, tile sizes) and take sizes and buffers as arguments, so two
// kernels of the same variant share one entry point.
package codegen

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// ArgKind is the C type of one kernel argument.
type ArgKind uint8

const (
	ArgBuffer  ArgKind = iota + 1 // pointer to a plan buffer in the arena (Buffer)
	ArgScratch                    // pointer into the executable's scratch area (Offset bytes in)
	ArgStatus                     // i32* to the executable's status word (kernel-side errors)
	ArgI32                        // int (Int)
	ArgI64                        // long long (Int)
	ArgU64                        // unsigned long long (Int, as bits)
	ArgF32                        // float (F32)
	ArgF64                        // double (F64)
)

// Arg is one kernel argument.
type Arg struct {
	Kind   ArgKind
	Buffer int   // ArgBuffer
	Offset int64 // ArgScratch
	Int    int64
	F32    float32
	F64    float64
}

func (a Arg) String() string {
	switch a.Kind {
	case ArgBuffer:
		return fmt.Sprintf("b%d", a.Buffer)
	case ArgScratch:
		return fmt.Sprintf("scratch+%d", a.Offset)
	case ArgStatus:
		return "status"
	case ArgI32, ArgI64:
		return fmt.Sprint(a.Int)
	case ArgU64:
		return fmt.Sprintf("%#x", uint64(a.Int))
	case ArgF32:
		return formatF32(a.F32)
	case ArgF64:
		return formatF64(a.F64)
	}
	return "?"
}

// Launch is one kernel launch.
type Launch struct {
	Kernel int    // index of the plan kernel in its program (-1: parameter init)
	Op     string // the plan kernel's op (or "init")
	Entry  string // extern "C" entry point in the unit
	Grid   [3]uint32
	Block  [3]uint32
	Args   []Arg
}

// Unit is a plan's generated code: the source and every launch.
type Unit struct {
	Source  string
	Entries []string            // entry points the launches use, sorted
	Init    []Launch            // parameter initialisation, in plan.Inits order
	Program map[string][]Launch // per program, in launch order
	// ScratchBytes is the device scratch the launches need besides the
	// arena (partial sums, counts, the status word). Kernels run one after
	// another on one stream, so they share it.
	ScratchBytes int64
}

// StatusBytes is the start of the scratch area reserved for the status
// word: kernels that detect a bad input (a label out of range, a negative
// step) store a nonzero code there; see StatusCode.
const StatusBytes = 256

// Status codes, as kernels store them: (kernel index + 1) << 8 | reason.
const (
	ReasonLabel = 1 // a label >= the number of classes
	ReasonStep  = 2 // a negative step count
	ReasonIndex = 3 // an index (a token id) >= the size of what it indexes
)

// StatusError decodes a nonzero status word.
func StatusError(code int32) (kernel int, reason string) {
	kernel = int(code>>8) - 1
	switch code & 0xff {
	case ReasonLabel:
		reason = "a label is out of range for the number of classes"
	case ReasonStep:
		reason = "the step count is negative"
	case ReasonIndex:
		reason = "an index (a token id) is out of range"
	default:
		reason = fmt.Sprintf("kernel error code %d", code&0xff)
	}
	return kernel, reason
}

// genFunc emits the launches of one plan kernel.
type genFunc func(g *gen) error

var table = map[string]genFunc{}

// register adds an op's generator; one file per kernel family calls it.
func register(op string, fn genFunc) {
	if _, dup := table[op]; dup {
		panic("codegen: op registered twice: " + op)
	}
	table[op] = fn
}

// Ops lists the ops that have a CUDA kernel, sorted.
func Ops() []string {
	out := make([]string, 0, len(table))
	for op := range table {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

// Has reports whether op has a CUDA kernel.
func Has(op string) bool { _, ok := table[op]; return ok }

// family is a block of device code that entry points share (helpers,
// templates). It is emitted once, after its dependencies, when used.
type family struct {
	deps []string
	src  string
}

var families = map[string]family{}

func addFamily(name string, deps []string, src string) {
	if _, dup := families[name]; dup {
		panic("codegen: family registered twice: " + name)
	}
	families[name] = family{deps: deps, src: src}
}

// builder accumulates a unit.
type builder struct {
	plan     *ir.Plan
	used     map[string]bool   // families
	entries  map[string]string // entry name -> source
	scratch  int64
	comments []string // the launch listing at the end of the unit
}

// gen is what a generator sees: one plan kernel and the builder.
type gen struct {
	*builder
	prog    string
	index   int
	k       *ir.Kernel
	launch  *[]Launch
	scratch int64 // bytes of scratch this kernel has reserved
}

func (g *gen) inType(i int) ir.Type  { return g.plan.Buffers[g.k.Ins[i]].Type }
func (g *gen) outType(i int) ir.Type { return g.plan.Buffers[g.k.Outs[i]].Type }
func (g *gen) attrs() ir.Attrs       { return g.k.Attrs }

// launchAttrs are the target choices the lowering recorded (Kernel.Launch),
// or the same choices made now for a plan built for another target.
func (g *gen) launchAttrs() ir.Attrs {
	if len(g.k.Launch) > 0 {
		return g.k.Launch
	}
	return Choose(g.plan, g.k)
}

// use marks a family (and its dependencies) as needed.
func (b *builder) use(name string) {
	if b.used[name] {
		return
	}
	f, ok := families[name]
	if !ok {
		panic("codegen: unknown family " + name)
	}
	b.used[name] = true
	for _, d := range f.deps {
		b.use(d)
	}
}

// entry adds an entry point; the same name must always have the same source.
func (b *builder) entry(name, src string) error {
	if old, ok := b.entries[name]; ok && old != src {
		return fmt.Errorf("codegen: entry %s generated twice with different code", name)
	}
	b.entries[name] = src
	return nil
}

// reserve returns the offset of n bytes of this kernel's scratch, 256-byte
// aligned, after the status word.
func (g *gen) reserve(n int64) int64 {
	off := StatusBytes + g.scratch
	g.scratch += (n + 255) / 256 * 256
	if end := StatusBytes + g.scratch; end > g.builder.scratch {
		g.builder.scratch = end
	}
	return off
}

// emit appends a launch of entry over a 1-D or 2-D grid.
func (g *gen) emit(entry string, grid, block [3]uint32, args ...Arg) {
	for i := range grid {
		grid[i] = max(grid[i], 1)
		block[i] = max(block[i], 1)
	}
	*g.launch = append(*g.launch, Launch{Kernel: g.index, Op: g.k.Op, Entry: entry, Grid: grid, Block: block, Args: args})
}

// Argument constructors.
func (g *gen) in(i int) Arg  { return Arg{Kind: ArgBuffer, Buffer: g.k.Ins[i]} }
func (g *gen) out(i int) Arg { return Arg{Kind: ArgBuffer, Buffer: g.k.Outs[i]} }
func scratchArg(off int64) Arg {
	return Arg{Kind: ArgScratch, Offset: off}
}
func statusArg() Arg          { return Arg{Kind: ArgStatus} }
func i32Arg(v int) Arg        { return Arg{Kind: ArgI32, Int: int64(v)} }
func i64Arg(v int64) Arg      { return Arg{Kind: ArgI64, Int: v} }
func u64Arg(v uint64) Arg     { return Arg{Kind: ArgU64, Int: int64(v)} }
func f32Arg(v float32) Arg    { return Arg{Kind: ArgF32, F32: v} }
func f64Arg(v float64) Arg    { return Arg{Kind: ArgF64, F64: v} }
func dim(x int) [3]uint32     { return [3]uint32{uint32(x), 1, 1} }
func dim2(x, y int) [3]uint32 { return [3]uint32{uint32(x), uint32(y), 1} }

// code is the status code a kernel stores for reason.
func (g *gen) code(reason int) Arg { return i32Arg((g.index+1)<<8 | reason) }

// Generate emits the unit for every program and parameter initializer of
// plan. It fails on an op without a CUDA kernel or on a kernel whose
// buffers do not fit its op.
func Generate(plan *ir.Plan) (*Unit, error) {
	b := newBuilder()
	u, err := b.generate(plan)
	if err != nil {
		return nil, err
	}
	u.Source = b.source(plan.Name + " " + plan.ShortHash() + " (target " + plan.Target + ")")
	return u, nil
}

// Source is one translation unit for several plans (families and entry
// points shared), for compile checks: one compiler run covers them all.
func Source(plans ...*ir.Plan) (string, error) {
	b := newBuilder()
	var names []string
	for _, p := range plans {
		if _, err := b.generate(p); err != nil {
			return "", fmt.Errorf("plan %s: %w", p.Name, err)
		}
		names = append(names, p.Name+" "+p.ShortHash())
	}
	return b.source(strings.Join(names, ", ")), nil
}

func newBuilder() *builder {
	return &builder{used: map[string]bool{}, entries: map[string]string{}, scratch: StatusBytes}
}

func (b *builder) generate(plan *ir.Plan) (*Unit, error) {
	b.plan, b.scratch = plan, StatusBytes
	u := &Unit{Program: map[string][]Launch{}}
	if err := b.inits(&u.Init); err != nil {
		return nil, err
	}
	for pi := range plan.Programs {
		pr := &plan.Programs[pi]
		var launches []Launch
		for i := range pr.Kernels {
			k := &pr.Kernels[i]
			fn, ok := table[k.Op]
			if !ok {
				return nil, fmt.Errorf("program %s, kernel %s: the cuda backend has no kernel for op %q", pr.Name, k.Name, k.Op)
			}
			if err := checkBuffers(plan, k); err != nil {
				return nil, fmt.Errorf("program %s, kernel %s (%s): %w", pr.Name, k.Name, k.Op, err)
			}
			g := &gen{builder: b, prog: pr.Name, index: i, k: k, launch: &launches}
			if err := fn(g); err != nil {
				return nil, fmt.Errorf("program %s, kernel %s (%s): %w", pr.Name, k.Name, k.Op, err)
			}
		}
		u.Program[pr.Name] = launches
		b.listing(pr.Name, pr, launches)
	}
	u.ScratchBytes = b.scratch
	u.Entries = launchedEntries(u)
	return u, nil
}

// launchedEntries lists the entry points the launches use, sorted.
func launchedEntries(u *Unit) []string {
	set := map[string]bool{}
	for _, l := range u.Init {
		set[l.Entry] = true
	}
	for _, ls := range u.Program {
		for _, l := range ls {
			set[l.Entry] = true
		}
	}
	return sortedKeys(set)
}

// checkBuffers re-runs the op's type rule on the bound buffers, as the CPU
// backend does, so a generator may trust ranks and sizes.
func checkBuffers(plan *ir.Plan, k *ir.Kernel) error {
	var ins []ir.Type
	for _, id := range append(append([]int{}, k.Ins...), k.Outs...) {
		if id < 0 || id >= len(plan.Buffers) {
			return fmt.Errorf("buffer %d does not exist", id)
		}
	}
	for _, id := range k.Ins {
		ins = append(ins, plan.Buffers[id].Type)
	}
	want, err := ir.InferTypes(k.Op, ins, k.Attrs)
	if err != nil {
		return err
	}
	if len(want) != len(k.Outs) {
		return fmt.Errorf("%d outputs, the op has %d", len(k.Outs), len(want))
	}
	for i, id := range k.Outs {
		if !plan.Buffers[id].Type.Equal(want[i]) {
			return fmt.Errorf("output %d is %s, the op gives %s", i, plan.Buffers[id].Type, want[i])
		}
	}
	return nil
}

// listing records a program's launches as comments at the end of the unit,
// so the golden file shows what runs, not only what is compiled.
func (b *builder) listing(name string, pr *ir.Program, ls []Launch) {
	b.comments = append(b.comments, fmt.Sprintf("program %s: %d kernels, %d launches", name, len(pr.Kernels), len(ls)))
	for _, l := range ls {
		b.comments = append(b.comments, "  "+describe(pr.Kernels[l.Kernel].Name, l))
	}
}

func describe(kname string, l Launch) string {
	args := make([]string, len(l.Args))
	for i, a := range l.Args {
		args[i] = a.String()
	}
	return fmt.Sprintf("%-4s %-18s %s<<<(%d,%d,%d), (%d,%d,%d)>>>(%s)", kname, l.Op, l.Entry,
		l.Grid[0], l.Grid[1], l.Grid[2], l.Block[0], l.Block[1], l.Block[2], strings.Join(args, ", "))
}

// source assembles the unit: prelude, families in dependency order, entry
// points sorted by name, then the launch listing.
func (b *builder) source(what string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "// expc CUDA translation unit for plan %s\n", what)
	sb.WriteString("// Generated by backends/cuda/codegen; do not edit.\n\n")
	sb.WriteString(prelude)
	done := map[string]bool{}
	var emit func(name string)
	emit = func(name string) {
		if done[name] {
			return
		}
		done[name] = true
		f := families[name]
		for _, d := range f.deps {
			emit(d)
		}
		fmt.Fprintf(&sb, "\n// ---- family %s ----\n%s", name, f.src)
	}
	for _, name := range sortedKeys(b.used) {
		emit(name)
	}
	names := sortedKeys(b.entries)
	if len(names) > 0 {
		sb.WriteString("\n// ---- entry points ----\n")
	}
	for _, name := range names {
		sb.WriteString("\n")
		sb.WriteString(b.entries[name])
	}
	sb.WriteString("\n// ---- launches ----\n")
	for _, c := range b.comments {
		sb.WriteString("// " + strings.TrimRight(c, " ") + "\n")
	}
	return sb.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func formatF32(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
func formatF64(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
