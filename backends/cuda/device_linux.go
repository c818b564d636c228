//go:build linux

package cuda

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"unsafe"
)

// device is one GPU and its primary context. A CUDA context is current per
// OS thread, so one goroutine, locked to its thread, makes every call; do
// hands it work and waits.
type device struct {
	drv          *driver
	rtc          *nvrtc
	ordinal      int32
	ctx          uintptr
	name         string
	major, minor int32

	mu    sync.Mutex // one caller of do at a time
	work  chan func() error
	reply chan error

	cubinMu sync.Mutex
	cubins  map[[32]byte][]byte // NVRTC output by source hash, for repeated Prepare (under cubinMu: Prepare may run on several goroutines)
}

var (
	theDevice   *device
	deviceErr   error
	openOnce    sync.Once
	deviceIndex = func() int32 { // EXPC_CUDA_DEVICE picks the GPU (default 0)
		n, err := strconv.Atoi(os.Getenv("EXPC_CUDA_DEVICE"))
		if err != nil || n < 0 {
			return 0
		}
		return int32(n)
	}
)

// openDevice loads the driver and NVRTC and makes the context, once per
// process; every error says what is missing.
func openDevice() (*device, error) {
	openOnce.Do(func() { theDevice, deviceErr = newDevice() })
	return theDevice, deviceErr
}

func newDevice() (*device, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	d := &device{drv: drv, ordinal: deviceIndex(), work: make(chan func() error), reply: make(chan error), cubins: map[[32]byte][]byte{}}
	started := make(chan error)
	go d.loop(started)
	if err := <-started; err != nil {
		return nil, err
	}
	rtc, err := loadNVRTC()
	if err != nil {
		return nil, err
	}
	d.rtc = rtc
	return d, nil
}

// loop is the owner goroutine: it initialises the driver and the context on
// its own OS thread, then runs work until the process ends.
func (d *device) loop(started chan<- error) {
	runtime.LockOSThread()
	err := d.init()
	started <- err
	if err != nil {
		return
	}
	for f := range d.work {
		d.reply <- f()
	}
}

func (d *device) init() error {
	drv := d.drv
	if r := drv.cuInit(0); r != 0 {
		err := drv.check("cuInit", r)
		if r == 100 { // CUDA_ERROR_NO_DEVICE
			return fmt.Errorf("no CUDA device: the NVIDIA driver is installed but sees no GPU (%v)", err)
		}
		return fmt.Errorf("the NVIDIA driver failed to initialise: %w", err)
	}
	var n int32
	if err := drv.check("cuDeviceGetCount", drv.cuDeviceGetCount(&n)); err != nil {
		return err
	}
	if d.ordinal >= n {
		return fmt.Errorf("no CUDA device %d: the driver sees %d (EXPC_CUDA_DEVICE picks one)", d.ordinal, n)
	}
	var dev int32
	if err := drv.check("cuDeviceGet", drv.cuDeviceGet(&dev, d.ordinal)); err != nil {
		return err
	}
	d.ordinal = dev
	const ccMajor, ccMinor = 75, 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
	if err := drv.check("cuDeviceGetAttribute", drv.cuDeviceGetAttribute(&d.major, ccMajor, dev)); err != nil {
		return err
	}
	if err := drv.check("cuDeviceGetAttribute", drv.cuDeviceGetAttribute(&d.minor, ccMinor, dev)); err != nil {
		return err
	}
	name := make([]byte, 256)
	if drv.cuDeviceGetName(&name[0], int32(len(name)), dev) == 0 {
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		d.name = string(name)
	}
	if err := drv.check("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain(&d.ctx, dev)); err != nil {
		return err
	}
	return drv.check("cuCtxSetCurrent", drv.cuCtxSetCurrent(d.ctx))
}

// do runs f on the owner goroutine.
func (d *device) do(f func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.work <- f
	return <-d.reply
}

// arch is the device's sm_XY.
func (d *device) arch() string { return fmt.Sprintf("sm_%d%d", d.major, d.minor) }

// compile runs NVRTC on src for this device: a CUBIN for its exact compute
// capability (PTX from an NVRTC newer than the driver would not load), or
// PTX from an NVRTC too old to emit CUBIN.
func (d *device) compile(name, src string) ([]byte, error) {
	key := sha256.Sum256([]byte(d.arch() + "\x00" + src))
	d.cubinMu.Lock()
	b, ok := d.cubins[key]
	d.cubinMu.Unlock()
	if ok {
		return b, nil
	}
	rtc := d.rtc
	cubin := rtc.nvrtcGetCUBIN != nil
	arch := "--gpu-architecture=" + d.arch()
	if !cubin {
		arch = fmt.Sprintf("--gpu-architecture=compute_%d%d", d.major, d.minor)
	}
	var prog uintptr
	srcB, nameB := cBytes(src), cBytes(name)
	if r := rtc.nvrtcCreateProgram(&prog, &srcB[0], &nameB[0], 0, nil, nil); r != 0 {
		return nil, fmt.Errorf("NVRTC (%s): nvrtcCreateProgram: %s", rtc.path, rtc.errString(r))
	}
	defer rtc.nvrtcDestroyProgram(&prog)
	opts := [][]byte{cBytes(arch), cBytes("--std=c++17")}
	ptrs := make([]*byte, len(opts))
	for i := range opts {
		ptrs[i] = &opts[i][0]
	}
	var pin runtime.Pinner
	for i := range opts {
		pin.Pin(&opts[i][0])
	}
	defer pin.Unpin()
	if r := rtc.nvrtcCompileProgram(prog, int32(len(ptrs)), unsafe.Pointer(&ptrs[0])); r != 0 {
		var n uint64
		log := ""
		if rtc.nvrtcGetProgramLogSize(prog, &n) == 0 && n > 1 {
			b := make([]byte, n)
			if rtc.nvrtcGetProgramLog(prog, &b[0]) == 0 {
				log = string(b[:n-1])
			}
		}
		return nil, fmt.Errorf("NVRTC (%s) could not compile the generated CUDA for %s: %s\n%s", rtc.path, d.arch(), rtc.errString(r), log)
	}
	var n uint64
	var out []byte
	if cubin {
		if r := rtc.nvrtcGetCUBINSize(prog, &n); r != 0 || n == 0 {
			return nil, fmt.Errorf("NVRTC: nvrtcGetCUBINSize: %s", rtc.errString(r))
		}
		out = make([]byte, n)
		if r := rtc.nvrtcGetCUBIN(prog, &out[0]); r != 0 {
			return nil, fmt.Errorf("NVRTC: nvrtcGetCUBIN: %s", rtc.errString(r))
		}
	} else {
		if r := rtc.nvrtcGetPTXSize(prog, &n); r != 0 || n == 0 {
			return nil, fmt.Errorf("NVRTC: nvrtcGetPTXSize: %s", rtc.errString(r))
		}
		out = make([]byte, n) // NUL-terminated, as cuModuleLoadData wants PTX
		if r := rtc.nvrtcGetPTX(prog, &out[0]); r != 0 {
			return nil, fmt.Errorf("NVRTC: nvrtcGetPTX: %s", rtc.errString(r))
		}
	}
	d.cubinMu.Lock()
	d.cubins[key] = out
	d.cubinMu.Unlock()
	return out, nil
}
