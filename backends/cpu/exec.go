package cpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// Executable is a plan bound to one arena. It is not safe for concurrent use:
// kernels keep per-launch scratch (partial sums) in their prepared state.
type Executable struct {
	plan  *ir.Plan
	pool  *pool.Pool
	arena []byte      // ArenaBytes long, 64-byte aligned
	f32   [][]float32 // per buffer id: its view, or nil for an i32 buffer
	i32   [][]int32
	progs map[string]*program
}

var _ backends.Executable = (*Executable)(nil)

type program struct {
	name    string
	kernels []kernel
	defs    []ir.Kernel
}

func (b *Backend) prepare(plan *ir.Plan) (*Executable, error) {
	x := &Executable{plan: plan, pool: b.pool, progs: map[string]*program{}}
	if err := x.allocate(); err != nil {
		return nil, err
	}
	if err := x.initParams(); err != nil {
		return nil, err
	}
	for i := range plan.Programs {
		pr := &plan.Programs[i]
		if _, dup := x.progs[pr.Name]; dup {
			return nil, fmt.Errorf("plan has two programs named %q", pr.Name)
		}
		p, err := x.bind(pr)
		if err != nil {
			return nil, err
		}
		x.progs[pr.Name] = p
	}
	return x, nil
}

func (x *Executable) bind(pr *ir.Program) (*program, error) {
	p := &program{name: pr.Name, kernels: make([]kernel, len(pr.Kernels)), defs: pr.Kernels}
	for i := range pr.Kernels {
		k := &pr.Kernels[i]
		fail := func(err error) (*program, error) {
			return nil, fmt.Errorf("program %s, kernel %d %s (%s): %w", pr.Name, i, k.Name, k.Op, err)
		}
		def, ok := kernelTable[k.Op]
		if !ok {
			return fail(fmt.Errorf("the cpu backend has no kernel for op %q", k.Op))
		}
		if err := x.checkKernel(k, def.inPlace); err != nil {
			return fail(err)
		}
		kn, err := def.build(&binder{x: x, k: k, pool: x.pool})
		if err != nil {
			return fail(err)
		}
		p.kernels[i] = kn
	}
	return p, nil
}

// checkKernel validates buffer ids, re-runs the op's type rule on the bound
// buffers' types and rejects aliasing the kernel cannot tolerate.
func (x *Executable) checkKernel(k *ir.Kernel, inPlace bool) error {
	bufs := x.plan.Buffers
	var ins []ir.Type
	for _, id := range append(append([]int{}, k.Ins...), k.Outs...) {
		if id < 0 || id >= len(bufs) {
			return fmt.Errorf("buffer %d does not exist", id)
		}
	}
	for _, id := range k.Ins {
		ins = append(ins, bufs[id].Type)
	}
	want, err := ir.InferTypes(k.Op, ins, k.Attrs)
	if err != nil {
		return err
	}
	if len(want) != len(k.Outs) {
		return fmt.Errorf("%d outputs, the op has %d", len(k.Outs), len(want))
	}
	for i, id := range k.Outs {
		if !bufs[id].Type.Equal(want[i]) {
			return fmt.Errorf("output %d is buffer %s of %s, the op gives %s", i, bufs[id].Name, bufs[id].Type, want[i])
		}
	}
	for i, o := range k.Outs {
		ob := &bufs[o]
		for _, in := range k.Ins {
			ib := &bufs[in]
			if overlap(ob, ib) && !(inPlace && ob.Offset == ib.Offset && ob.Bytes == ib.Bytes) {
				return fmt.Errorf("output %s overlaps input %s and the kernel cannot run in place", ob.Name, ib.Name)
			}
		}
		for _, o2 := range k.Outs[i+1:] {
			if overlap(ob, &bufs[o2]) {
				return fmt.Errorf("outputs %s and %s overlap", ob.Name, bufs[o2].Name)
			}
		}
	}
	return nil
}

func overlap(a, b *ir.Buffer) bool {
	return a.Bytes > 0 && b.Bytes > 0 && a.Offset < b.Offset+b.Bytes && b.Offset < a.Offset+a.Bytes
}

// allocate makes the one arena and a typed view of every buffer.
func (x *Executable) allocate() error {
	n := x.plan.Memory.ArenaBytes
	if n < 0 || n > math.MaxInt-64 {
		return fmt.Errorf("arena size %d is out of range", n)
	}
	// Over-allocate and slice so that the arena starts on a cache line (and
	// so on a vector boundary for any width). make zeroes it.
	raw := make([]byte, n+64)
	skip := (64 - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%64)) % 64
	x.arena = raw[skip : skip+int(n) : skip+int(n)]
	x.f32 = make([][]float32, len(x.plan.Buffers))
	x.i32 = make([][]int32, len(x.plan.Buffers))
	for i := range x.plan.Buffers {
		buf := &x.plan.Buffers[i]
		if buf.ID != i {
			return fmt.Errorf("buffer %s has id %d at position %d: ids must equal positions", buf.Name, buf.ID, i)
		}
		if buf.Bytes != buf.Type.Bytes() {
			return fmt.Errorf("buffer %s: %d bytes, its type %s needs %d", buf.Name, buf.Bytes, buf.Type, buf.Type.Bytes())
		}
		if buf.Offset < 0 || buf.Offset%4 != 0 || buf.Offset+buf.Bytes > n {
			return fmt.Errorf("buffer %s: bytes [%d, %d) do not fit a %d-byte arena with 4-byte alignment", buf.Name, buf.Offset, buf.Offset+buf.Bytes, n)
		}
		elems := int(buf.Bytes / 4)
		switch buf.Type.DType {
		case ir.F32:
			x.f32[i] = view[float32](x.arena, buf.Offset, elems)
		case ir.I32:
			x.i32[i] = view[int32](x.arena, buf.Offset, elems)
		default:
			return fmt.Errorf("buffer %s has unsupported element type %s", buf.Name, buf.Type.DType)
		}
	}
	return nil
}

func view[T float32 | int32](arena []byte, off int64, elems int) []T {
	if elems == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&arena[off])), elems)
}

// Run executes a program's kernels in order. It allocates nothing unless it
// returns an error.
func (x *Executable) Run(name string) error {
	p, err := x.program(name)
	if err != nil {
		return err
	}
	for i, k := range p.kernels {
		if err := k.run(); err != nil {
			return p.kernelError(i, err)
		}
	}
	return nil
}

// RunChecked executes a program, checking every f32 output of every kernel
// for NaN and Inf, and stops at the first kernel that produced one.
func (x *Executable) RunChecked(name string) (int, error) {
	p, err := x.program(name)
	if err != nil {
		return -1, err
	}
	for i, k := range p.kernels {
		if err := k.run(); err != nil {
			return i, p.kernelError(i, err)
		}
		for _, o := range p.defs[i].Outs {
			if j := firstNonFinite(x.f32[o]); j >= 0 {
				return i, nil
			}
		}
	}
	return -1, nil
}

func (x *Executable) program(name string) (*program, error) {
	if x.progs == nil {
		return nil, errors.New("cpu: executable is closed")
	}
	p, ok := x.progs[name]
	if !ok {
		return nil, fmt.Errorf("cpu: plan has no program %q", name)
	}
	return p, nil
}

func (p *program) kernelError(i int, err error) error {
	k := &p.defs[i]
	return fmt.Errorf("program %s, kernel %d %s (%s): %w", p.name, i, k.Name, k.Op, err)
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or -1.
func firstNonFinite(v []float32) int {
	for i, f := range v {
		if math.Float32bits(f)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

// F32 views an f32 buffer in the arena; nil for an unknown id or an i32 buffer.
func (x *Executable) F32(buffer int) []float32 {
	if buffer < 0 || buffer >= len(x.f32) {
		return nil
	}
	return x.f32[buffer]
}

// I32 views an i32 buffer in the arena; nil for an unknown id or an f32 buffer.
func (x *Executable) I32(buffer int) []int32 {
	if buffer < 0 || buffer >= len(x.i32) {
		return nil
	}
	return x.i32[buffer]
}

// littleEndian reports whether the arena's in-memory layout is already the
// checkpoint format.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// SaveState appends every persistent buffer, in buffer order, as raw
// little-endian bytes.
func (x *Executable) SaveState(dst []byte) []byte {
	for i := range x.plan.Buffers {
		buf := &x.plan.Buffers[i]
		if !buf.Kind.Persistent() {
			continue
		}
		b := x.arena[buf.Offset : buf.Offset+buf.Bytes]
		if littleEndian {
			dst = append(dst, b...)
			continue
		}
		for j := 0; j < len(b); j += 4 {
			dst = binary.LittleEndian.AppendUint32(dst, binary.NativeEndian.Uint32(b[j:]))
		}
	}
	return dst
}

// StateBytes is the length of SaveState's output.
func (x *Executable) StateBytes() int64 {
	var n int64
	for i := range x.plan.Buffers {
		if x.plan.Buffers[i].Kind.Persistent() {
			n += x.plan.Buffers[i].Bytes
		}
	}
	return n
}

// LoadState is the inverse of SaveState; src must be exactly StateBytes long.
func (x *Executable) LoadState(src []byte) error {
	if want := x.StateBytes(); int64(len(src)) != want {
		return fmt.Errorf("cpu: state is %d bytes, the plan's persistent buffers take %d", len(src), want)
	}
	for i := range x.plan.Buffers {
		buf := &x.plan.Buffers[i]
		if !buf.Kind.Persistent() {
			continue
		}
		b := x.arena[buf.Offset : buf.Offset+buf.Bytes]
		if littleEndian {
			copy(b, src)
		} else {
			for j := 0; j < len(b); j += 4 {
				binary.NativeEndian.PutUint32(b[j:], binary.LittleEndian.Uint32(src[j:]))
			}
		}
		src = src[len(b):]
	}
	return nil
}

// Close releases the arena. The executable cannot be run afterwards.
func (x *Executable) Close() error {
	x.arena, x.f32, x.i32, x.progs = nil, nil, nil, nil
	return nil
}
