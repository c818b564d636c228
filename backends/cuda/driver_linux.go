//go:build linux

package cuda

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Bindings to the CUDA driver API and NVRTC, loaded at run time with purego:
// expc builds without cgo and without CUDA headers, and a machine without
// the libraries gets an error naming what is missing. Every symbol is looked
// up with Dlsym and bound with RegisterFunc (RegisterLibFunc panics on a
// symbol an old driver lacks). C int is int32, size_t and CUdeviceptr uint64.

type cuResult int32

// driver is the bound driver API.
type driver struct {
	lib uintptr

	cuInit                    func(flags uint32) cuResult
	cuDriverGetVersion        func(v *int32) cuResult
	cuDeviceGetCount          func(n *int32) cuResult
	cuDeviceGet               func(dev *int32, ordinal int32) cuResult
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) cuResult
	cuDeviceGetName           func(name *byte, n int32, dev int32) cuResult
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) cuResult
	cuDevicePrimaryCtxRelease func(dev int32) cuResult
	cuCtxSetCurrent           func(ctx uintptr) cuResult
	cuCtxSynchronize          func() cuResult
	cuMemAlloc                func(p *uint64, n uint64) cuResult
	cuMemFree                 func(p uint64) cuResult
	cuMemcpyHtoD              func(dst uint64, src unsafe.Pointer, n uint64) cuResult
	cuMemcpyDtoH              func(dst unsafe.Pointer, src uint64, n uint64) cuResult
	cuMemsetD8                func(dst uint64, v uint8, n uint64) cuResult
	cuModuleLoadData          func(mod *uintptr, image unsafe.Pointer) cuResult
	cuModuleUnload            func(mod uintptr) cuResult
	cuModuleGetFunction       func(fn *uintptr, mod uintptr, name *byte) cuResult
	cuLaunchKernel            func(fn uintptr, gx, gy, gz, bx, by, bz, shared uint32, stream uintptr, params unsafe.Pointer, extra unsafe.Pointer) cuResult
	cuGetErrorName            func(r cuResult, s *unsafe.Pointer) cuResult
	cuGetErrorString          func(r cuResult, s *unsafe.Pointer) cuResult
}

// nvrtc is the bound NVRTC API.
type nvrtc struct {
	lib  uintptr
	path string

	nvrtcVersion           func(major, minor *int32) int32
	nvrtcCreateProgram     func(prog *uintptr, src *byte, name *byte, nHeaders int32, headers unsafe.Pointer, includes unsafe.Pointer) int32
	nvrtcCompileProgram    func(prog uintptr, nOpts int32, opts unsafe.Pointer) int32
	nvrtcGetProgramLogSize func(prog uintptr, n *uint64) int32
	nvrtcGetProgramLog     func(prog uintptr, log *byte) int32
	nvrtcGetCUBINSize      func(prog uintptr, n *uint64) int32
	nvrtcGetCUBIN          func(prog uintptr, cubin *byte) int32
	nvrtcGetPTXSize        func(prog uintptr, n *uint64) int32
	nvrtcGetPTX            func(prog uintptr, ptx *byte) int32
	nvrtcDestroyProgram    func(prog *uintptr) int32
	nvrtcGetErrorString    func(r int32) string
}

const rtldNow, rtldGlobal = 0x2, 0x100

// driverLibs: the unversioned libcuda.so may be the toolkit's stub (every
// call fails with error 34), so the driver's own soname comes first;
// EXPC_LIBCUDA names a library explicitly.
var driverLibs = []string{"libcuda.so.1", "libcuda.so"}

// nvrtcLibs: newest first; EXPC_NVRTC names a library explicitly.
var nvrtcLibs = []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11.1", "libnvrtc.so.11.0", "libnvrtc.so"}

func openFirst(names []string) (uintptr, string, error) {
	var errs []string
	for _, n := range names {
		h, err := purego.Dlopen(n, rtldNow|rtldGlobal)
		if err == nil {
			return h, n, nil
		}
		errs = append(errs, err.Error())
	}
	return 0, "", errors.New(strings.Join(errs, "; "))
}

// bind looks up each named symbol and binds it to the function pointer.
func bind(lib uintptr, libName string, syms map[string]any, optional map[string]bool) error {
	for name, fptr := range syms {
		addr, err := purego.Dlsym(lib, name)
		if err != nil || addr == 0 {
			if optional[name] {
				continue
			}
			return fmt.Errorf("%s has no symbol %s (too old?)", libName, name)
		}
		purego.RegisterFunc(fptr, addr)
	}
	return nil
}

func loadDriver() (*driver, error) {
	names := driverLibs
	if p := os.Getenv("EXPC_LIBCUDA"); p != "" { // e.g. the fake driver (backends/cuda/fakecuda)
		names = []string{p}
	}
	lib, name, err := openFirst(names)
	if err != nil {
		return nil, fmt.Errorf("no NVIDIA driver: cannot load %s (%v); the cuda backend needs an NVIDIA GPU and its driver (run with --backend cpu instead, or set EXPC_LIBCUDA=/path/to/libcuda.so)",
			strings.Join(names, " or "), err)
	}
	d := &driver{lib: lib}
	err = bind(lib, name, map[string]any{
		"cuInit": &d.cuInit, "cuDriverGetVersion": &d.cuDriverGetVersion, "cuDeviceGetCount": &d.cuDeviceGetCount,
		"cuDeviceGet": &d.cuDeviceGet, "cuDeviceGetAttribute": &d.cuDeviceGetAttribute, "cuDeviceGetName": &d.cuDeviceGetName,
		"cuDevicePrimaryCtxRetain": &d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRelease_v2": &d.cuDevicePrimaryCtxRelease,
		"cuCtxSetCurrent": &d.cuCtxSetCurrent, "cuCtxSynchronize": &d.cuCtxSynchronize,
		"cuMemAlloc_v2": &d.cuMemAlloc, "cuMemFree_v2": &d.cuMemFree,
		"cuMemcpyHtoD_v2": &d.cuMemcpyHtoD, "cuMemcpyDtoH_v2": &d.cuMemcpyDtoH, "cuMemsetD8_v2": &d.cuMemsetD8,
		"cuModuleLoadData": &d.cuModuleLoadData, "cuModuleUnload": &d.cuModuleUnload, "cuModuleGetFunction": &d.cuModuleGetFunction,
		"cuLaunchKernel": &d.cuLaunchKernel, "cuGetErrorName": &d.cuGetErrorName, "cuGetErrorString": &d.cuGetErrorString,
	}, nil)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func loadNVRTC() (*nvrtc, error) {
	names := nvrtcLibs
	if p := os.Getenv("EXPC_NVRTC"); p != "" {
		names = []string{p}
	}
	lib, name, err := openFirst(names)
	if err != nil {
		return nil, fmt.Errorf("no NVRTC: cannot load %s (%v); install the CUDA toolkit's NVRTC (e.g. the cuda-nvrtc package) or set EXPC_NVRTC=/path/to/libnvrtc.so",
			strings.Join(names, ", "), err)
	}
	n := &nvrtc{lib: lib, path: name}
	err = bind(lib, name, map[string]any{
		"nvrtcVersion": &n.nvrtcVersion, "nvrtcCreateProgram": &n.nvrtcCreateProgram, "nvrtcCompileProgram": &n.nvrtcCompileProgram,
		"nvrtcGetProgramLogSize": &n.nvrtcGetProgramLogSize, "nvrtcGetProgramLog": &n.nvrtcGetProgramLog,
		"nvrtcGetCUBINSize": &n.nvrtcGetCUBINSize, "nvrtcGetCUBIN": &n.nvrtcGetCUBIN,
		"nvrtcGetPTXSize": &n.nvrtcGetPTXSize, "nvrtcGetPTX": &n.nvrtcGetPTX,
		"nvrtcDestroyProgram": &n.nvrtcDestroyProgram, "nvrtcGetErrorString": &n.nvrtcGetErrorString,
	}, map[string]bool{"nvrtcGetCUBINSize": true, "nvrtcGetCUBIN": true}) // NVRTC < 11.1 has PTX only
	if err != nil {
		return nil, err
	}
	return n, nil
}

// check turns a driver result into an error naming the call.
func (d *driver) check(call string, r cuResult) error {
	if r == 0 {
		return nil
	}
	name, desc := "", ""
	var p unsafe.Pointer
	if d.cuGetErrorName != nil && d.cuGetErrorName(r, &p) == 0 {
		name = cString(p)
	}
	if d.cuGetErrorString != nil && d.cuGetErrorString(r, &p) == 0 {
		desc = cString(p)
	}
	return &Error{Call: call, Code: int(r), Name: name, Desc: desc}
}

func (n *nvrtc) errString(r int32) string {
	if n.nvrtcGetErrorString == nil {
		return fmt.Sprintf("NVRTC error %d", r)
	}
	return n.nvrtcGetErrorString(r)
}

// cString copies a NUL-terminated C string.
func cString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	var b []byte
	for i := 0; i < 4096; i++ {
		c := *(*byte)(unsafe.Add(p, i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

func cBytes(s string) []byte { return append([]byte(s), 0) }
