//go:build linux

package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"
	"unsafe"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/ir"
)

// Backend launches plans on one GPU.
type Backend struct{ d *device }

// New opens the GPU (EXPC_CUDA_DEVICE, default 0). Without an NVIDIA
// driver, a GPU or NVRTC it returns an error saying which is missing.
func New() (*Backend, error) {
	d, err := openDevice()
	if err != nil {
		return nil, fmt.Errorf("cuda backend: %w", err)
	}
	return &Backend{d: d}, nil
}

// Name is "cuda".
func (b *Backend) Name() string { return "cuda" }

// Device describes the GPU: its name and compute capability.
func (b *Backend) Device() string { return fmt.Sprintf("%s (%s)", b.d.name, b.d.arch()) }

// Capabilities lists the ops the code generator has kernels for.
func (b *Backend) Capabilities() backends.Capabilities {
	return backends.Capabilities{Ops: codegen.Ops(), Threads: 1}
}

// launch is a prepared kernel launch: the function and its parameter
// block, pinned for the executable's lifetime so cuLaunchKernel can read it.
type launch struct {
	def    codegen.Launch
	fn     uintptr
	slots  []uint64         // one 8-byte slot per argument value
	params []unsafe.Pointer // kernelParams: &slots[i]
}

type program struct {
	def      *ir.Program
	launches []launch
	ins      []int // input binding buffers, uploaded before the launches
	outs     []int // output binding buffers, downloaded after
}

// Executable is a plan on the GPU. It is not safe for concurrent use.
type Executable struct {
	d       *device
	plan    *ir.Plan
	unit    *codegen.Unit
	module  uintptr
	arena   uint64 // device pointers
	scratch uint64
	host    []byte // the host mirror of the arena
	f32     [][]float32
	i32     [][]int32
	progs   map[string]*program
	pin     runtime.Pinner
	status  [2]int32 // the downloaded status word
}

var _ backends.Executable = (*Executable)(nil)

// Prepare generates and compiles the plan's CUDA, allocates the arena and
// scratch on the GPU, initialises the parameters there and prepares every
// launch.
func (b *Backend) Prepare(plan *ir.Plan) (backends.Executable, error) {
	u, err := codegen.Generate(plan)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	x := &Executable{d: b.d, plan: plan, unit: u, progs: map[string]*program{}}
	if err := x.hostViews(); err != nil {
		return nil, err
	}
	image, err := b.d.compile(plan.Name+".cu", u.Source)
	if err != nil {
		return nil, err
	}
	err = b.d.do(func() error { return x.setup(image) })
	if err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

// hostViews makes the host mirror and its typed views, checking the layout
// as the CPU backend does.
func (x *Executable) hostViews() error {
	n := x.plan.Memory.ArenaBytes
	if n < 0 || n > math.MaxInt-64 {
		return fmt.Errorf("cuda: arena size %d is out of range", n)
	}
	x.host = make([]byte, n)
	x.f32 = make([][]float32, len(x.plan.Buffers))
	x.i32 = make([][]int32, len(x.plan.Buffers))
	for i := range x.plan.Buffers {
		buf := &x.plan.Buffers[i]
		if buf.ID != i || buf.Bytes != buf.Type.Bytes() || buf.Offset < 0 || buf.Offset%4 != 0 || buf.Offset+buf.Bytes > n {
			return fmt.Errorf("cuda: buffer %s (id %d): bytes [%d, %d) do not fit a %d-byte arena as its type %s needs", buf.Name, buf.ID, buf.Offset, buf.Offset+buf.Bytes, n, buf.Type)
		}
		if buf.Bytes == 0 {
			continue
		}
		p := unsafe.Pointer(&x.host[buf.Offset])
		switch buf.Type.DType {
		case ir.F32:
			x.f32[i] = unsafe.Slice((*float32)(p), buf.Bytes/4)
		case ir.I32:
			x.i32[i] = unsafe.Slice((*int32)(p), buf.Bytes/4)
		default:
			return fmt.Errorf("cuda: buffer %s has unsupported element type %s", buf.Name, buf.Type.DType)
		}
	}
	return nil
}

// setup runs on the owner goroutine.
func (x *Executable) setup(image []byte) error {
	drv := x.d.drv
	if err := drv.check("cuModuleLoadData", drv.cuModuleLoadData(&x.module, unsafe.Pointer(&image[0]))); err != nil {
		return fmt.Errorf("loading the compiled kernels for %s: %w", x.d.arch(), err)
	}
	fns := map[string]uintptr{}
	for _, e := range x.unit.Entries {
		var fn uintptr
		name := cBytes(e)
		if err := drv.check("cuModuleGetFunction", drv.cuModuleGetFunction(&fn, x.module, &name[0])); err != nil {
			return fmt.Errorf("kernel %s: %w", e, err)
		}
		fns[e] = fn
	}
	if err := drv.check("cuMemAlloc", drv.cuMemAlloc(&x.arena, uint64(max(x.plan.Memory.ArenaBytes, 4)))); err != nil {
		return fmt.Errorf("allocating the %d-byte arena: %w", x.plan.Memory.ArenaBytes, err)
	}
	if err := drv.check("cuMemAlloc", drv.cuMemAlloc(&x.scratch, uint64(x.unit.ScratchBytes))); err != nil {
		return fmt.Errorf("allocating %d bytes of scratch: %w", x.unit.ScratchBytes, err)
	}
	// State buffers start at zero, as in the CPU backend's fresh arena.
	if err := drv.check("cuMemsetD8", drv.cuMemsetD8(x.arena, 0, uint64(max(x.plan.Memory.ArenaBytes, 4)))); err != nil {
		return err
	}
	if err := drv.check("cuMemsetD8", drv.cuMemsetD8(x.scratch, 0, uint64(x.unit.ScratchBytes))); err != nil {
		return err
	}
	init, err := x.prepare(x.unit.Init, fns)
	if err != nil {
		return err
	}
	for i := range x.plan.Programs {
		pr := &x.plan.Programs[i]
		ls, err := x.prepare(x.unit.Program[pr.Name], fns)
		if err != nil {
			return fmt.Errorf("program %s: %w", pr.Name, err)
		}
		p := &program{def: pr, launches: ls}
		for _, b := range pr.Inputs {
			p.ins = append(p.ins, b.Buffer)
		}
		for _, b := range pr.Outputs {
			p.outs = append(p.outs, b.Buffer)
		}
		x.progs[pr.Name] = p
	}
	if err := x.launchAll(init); err != nil {
		return fmt.Errorf("initialising parameters: %w", err)
	}
	if err := drv.check("cuCtxSynchronize", drv.cuCtxSynchronize()); err != nil {
		return fmt.Errorf("initialising parameters: %w", err)
	}
	return x.download(x.persistent())
}

// prepare turns launches into parameter blocks.
func (x *Executable) prepare(defs []codegen.Launch, fns map[string]uintptr) ([]launch, error) {
	out := make([]launch, len(defs))
	for i, l := range defs {
		fn, ok := fns[l.Entry]
		if !ok {
			return nil, fmt.Errorf("no kernel %s in the module", l.Entry)
		}
		ln := launch{def: l, fn: fn, slots: make([]uint64, max(len(l.Args), 1)), params: make([]unsafe.Pointer, max(len(l.Args), 1))}
		for j, a := range l.Args {
			v, err := x.argValue(a)
			if err != nil {
				return nil, fmt.Errorf("%s argument %d: %w", l.Entry, j, err)
			}
			ln.slots[j] = v
			ln.params[j] = unsafe.Pointer(&ln.slots[j])
		}
		x.pin.Pin(&ln.slots[0])
		x.pin.Pin(&ln.params[0])
		out[i] = ln
	}
	return out, nil
}

// argValue is an argument's bytes, little-endian in an 8-byte slot (the
// driver reads as many bytes as the parameter's C type has).
func (x *Executable) argValue(a codegen.Arg) (uint64, error) {
	switch a.Kind {
	case codegen.ArgBuffer:
		if a.Buffer < 0 || a.Buffer >= len(x.plan.Buffers) {
			return 0, fmt.Errorf("buffer %d does not exist", a.Buffer)
		}
		return x.arena + uint64(x.plan.Buffers[a.Buffer].Offset), nil
	case codegen.ArgScratch:
		if a.Offset < 0 || a.Offset >= x.unit.ScratchBytes {
			return 0, fmt.Errorf("scratch offset %d is outside %d bytes", a.Offset, x.unit.ScratchBytes)
		}
		return x.scratch + uint64(a.Offset), nil
	case codegen.ArgStatus:
		return x.scratch, nil
	case codegen.ArgI32:
		return uint64(uint32(int32(a.Int))), nil
	case codegen.ArgI64, codegen.ArgU64:
		return uint64(a.Int), nil
	case codegen.ArgF32:
		return uint64(math.Float32bits(a.F32)), nil
	case codegen.ArgF64:
		return math.Float64bits(a.F64), nil
	}
	return 0, fmt.Errorf("unknown argument kind %d", a.Kind)
}

func (x *Executable) launchAll(ls []launch) error {
	drv := x.d.drv
	for i := range ls {
		l := &ls[i]
		g, b := l.def.Grid, l.def.Block
		if err := drv.check("cuLaunchKernel", drv.cuLaunchKernel(l.fn, g[0], g[1], g[2], b[0], b[1], b[2], 0, 0, unsafe.Pointer(&l.params[0]), nil)); err != nil {
			return fmt.Errorf("launching %s: %w", l.def.Entry, err)
		}
	}
	return nil
}

func (x *Executable) persistent() []int {
	var ids []int
	for i := range x.plan.Buffers {
		if x.plan.Buffers[i].Kind.Persistent() {
			ids = append(ids, i)
		}
	}
	return ids
}

func (x *Executable) upload(ids []int) error {
	drv := x.d.drv
	for _, id := range ids {
		b := &x.plan.Buffers[id]
		if b.Bytes == 0 {
			continue
		}
		if err := drv.check("cuMemcpyHtoD", drv.cuMemcpyHtoD(x.arena+uint64(b.Offset), unsafe.Pointer(&x.host[b.Offset]), uint64(b.Bytes))); err != nil {
			return fmt.Errorf("uploading %s: %w", b.Name, err)
		}
	}
	return nil
}

func (x *Executable) download(ids []int) error {
	drv := x.d.drv
	for _, id := range ids {
		b := &x.plan.Buffers[id]
		if b.Bytes == 0 {
			continue
		}
		if err := drv.check("cuMemcpyDtoH", drv.cuMemcpyDtoH(unsafe.Pointer(&x.host[b.Offset]), x.arena+uint64(b.Offset), uint64(b.Bytes))); err != nil {
			return fmt.Errorf("downloading %s: %w", b.Name, err)
		}
	}
	return nil
}

// checkStatus reads the status word; a kernel that found a bad input
// (a label out of range, a negative step) left a code there.
func (x *Executable) checkStatus(p *program) error {
	drv := x.d.drv
	if err := drv.check("cuMemcpyDtoH", drv.cuMemcpyDtoH(unsafe.Pointer(&x.status[0]), x.scratch, 4)); err != nil {
		return err
	}
	if x.status[0] == 0 {
		return nil
	}
	code := x.status[0]
	x.status[0] = 0
	if err := drv.check("cuMemsetD8", drv.cuMemsetD8(x.scratch, 0, 4)); err != nil {
		return err
	}
	k, reason := codegen.StatusError(code)
	if p != nil && k >= 0 && k < len(p.def.Kernels) {
		kd := &p.def.Kernels[k]
		return fmt.Errorf("program %s, kernel %d %s (%s): %s", p.def.Name, k, kd.Name, kd.Op, reason)
	}
	return errors.New(reason)
}

func (x *Executable) program(name string) (*program, error) {
	if x.progs == nil {
		return nil, errors.New("cuda: executable is closed")
	}
	p, ok := x.progs[name]
	if !ok {
		return nil, fmt.Errorf("cuda: plan has no program %q", name)
	}
	return p, nil
}

// Run uploads the program's inputs, launches its kernels, waits, downloads
// its outputs and reports any kernel-detected error.
func (x *Executable) Run(name string) error {
	p, err := x.program(name)
	if err != nil {
		return err
	}
	return x.d.do(func() error {
		if err := x.upload(p.ins); err != nil {
			return err
		}
		if err := x.launchAll(p.launches); err != nil {
			return err
		}
		if err := x.d.drv.check("cuCtxSynchronize", x.d.drv.cuCtxSynchronize()); err != nil {
			return fmt.Errorf("program %s: %w", name, err)
		}
		if err := x.download(p.outs); err != nil {
			return err
		}
		return x.checkStatus(p)
	})
}

// RunChecked runs the program kernel by kernel, downloading each kernel's
// f32 outputs, and stops after the first that wrote a NaN or Inf.
func (x *Executable) RunChecked(name string) (int, error) {
	p, err := x.program(name)
	if err != nil {
		return -1, err
	}
	bad := -1
	err = x.d.do(func() error {
		if err := x.upload(p.ins); err != nil {
			return err
		}
		for k := range p.def.Kernels {
			var ls []launch
			for _, l := range p.launches {
				if l.def.Kernel == k {
					ls = append(ls, l)
				}
			}
			if err := x.launchAll(ls); err != nil {
				return err
			}
			if err := x.d.drv.check("cuCtxSynchronize", x.d.drv.cuCtxSynchronize()); err != nil {
				return err
			}
			outs := p.def.Kernels[k].Outs
			if err := x.download(outs); err != nil {
				return err
			}
			for _, o := range outs {
				for _, v := range x.f32[o] {
					if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
						bad = k
						return nil
					}
				}
			}
		}
		return x.download(p.outs)
	})
	return bad, err
}

// F32 views an f32 buffer's host mirror (nil for an unknown id or an i32
// buffer). Input bindings written here go up with the next Run; output
// bindings are current after Run.
func (x *Executable) F32(buffer int) []float32 {
	if buffer < 0 || buffer >= len(x.f32) {
		return nil
	}
	return x.f32[buffer]
}

// I32 is F32 for i32 buffers.
func (x *Executable) I32(buffer int) []int32 {
	if buffer < 0 || buffer >= len(x.i32) {
		return nil
	}
	return x.i32[buffer]
}

// Sync downloads the given buffers (all of them when none are named) into
// the host mirror.
func (x *Executable) Sync(buffers ...int) error {
	if len(buffers) == 0 {
		for i := range x.plan.Buffers {
			buffers = append(buffers, i)
		}
	}
	return x.d.do(func() error { return x.download(buffers) })
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// SaveState appends every persistent buffer, in buffer order, as raw
// little-endian bytes (the CPU backend's checkpoint format).
func (x *Executable) SaveState(dst []byte) []byte {
	if err := x.d.do(func() error { return x.download(x.persistent()) }); err != nil {
		return dst // the next Run reports the device error
	}
	for _, id := range x.persistent() {
		b := &x.plan.Buffers[id]
		raw := x.host[b.Offset : b.Offset+b.Bytes]
		if littleEndian {
			dst = append(dst, raw...)
			continue
		}
		for j := 0; j < len(raw); j += 4 {
			dst = binary.LittleEndian.AppendUint32(dst, binary.NativeEndian.Uint32(raw[j:]))
		}
	}
	return dst
}

// LoadState is the inverse of SaveState.
func (x *Executable) LoadState(src []byte) error {
	var want int64
	for _, id := range x.persistent() {
		want += x.plan.Buffers[id].Bytes
	}
	if int64(len(src)) != want {
		return fmt.Errorf("cuda: state is %d bytes, the plan's persistent buffers take %d", len(src), want)
	}
	for _, id := range x.persistent() {
		b := &x.plan.Buffers[id]
		raw := x.host[b.Offset : b.Offset+b.Bytes]
		if littleEndian {
			copy(raw, src)
		} else {
			for j := 0; j < len(raw); j += 4 {
				binary.NativeEndian.PutUint32(raw[j:], binary.LittleEndian.Uint32(src[j:]))
			}
		}
		src = src[len(raw):]
	}
	return x.d.do(func() error { return x.upload(x.persistent()) })
}

// Close frees the device memory and the module.
func (x *Executable) Close() error {
	if x.d == nil {
		return nil
	}
	var err error
	if x.module != 0 || x.arena != 0 || x.scratch != 0 {
		err = x.d.do(func() error {
			drv := x.d.drv
			if x.arena != 0 {
				drv.cuMemFree(x.arena)
			}
			if x.scratch != 0 {
				drv.cuMemFree(x.scratch)
			}
			if x.module != 0 {
				return drv.check("cuModuleUnload", drv.cuModuleUnload(x.module))
			}
			return nil
		})
	}
	x.pin.Unpin()
	x.arena, x.scratch, x.module, x.progs, x.host, x.f32, x.i32 = 0, 0, 0, nil, nil, nil, nil
	return err
}

// TimeKernels launches a program's kernels once more, without moving any
// data, and returns the wall time from the first launch until the GPU has
// finished them: the kernels' own cost, for the GPU check's table.
func (x *Executable) TimeKernels(name string) (time.Duration, error) {
	p, err := x.program(name)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	err = x.d.do(func() error {
		drv := x.d.drv
		if err := drv.check("cuCtxSynchronize", drv.cuCtxSynchronize()); err != nil {
			return err
		}
		t0 := time.Now()
		if err := x.launchAll(p.launches); err != nil {
			return err
		}
		err := drv.check("cuCtxSynchronize", drv.cuCtxSynchronize())
		d = time.Since(t0)
		if err != nil {
			return err
		}
		return x.checkStatus(p)
	})
	return d, err
}
