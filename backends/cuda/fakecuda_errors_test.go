//go:build linux

package cuda

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
)

// TestFakeDriverErrors: the fake refuses what it cannot emulate, or what a
// real driver would refuse, with the driver's error codes, and the backend
// turns them (and NVRTC failures) into errors that say what failed.
func TestFakeDriverErrors(t *testing.T) {
	gb := openFake(t)
	c := kerneltest.Cases()[0]
	plan, err := c.Plan("cuda")
	if err != nil {
		t.Fatal(err)
	}
	bx, err := gb.Prepare(plan)
	if err != nil {
		t.Fatal(err)
	}
	defer bx.Close()
	x := bx.(*Executable)
	drv := x.d.drv
	l := x.progs["train"].launches[0]
	code := func(err error) int {
		var e *Error
		if errors.As(err, &e) {
			return e.Code
		}
		return 0
	}
	// A 2-D block: the emulator runs 1-D blocks.
	err = x.d.do(func() error {
		return drv.check("cuLaunchKernel", drv.cuLaunchKernel(l.fn, 1, 1, 1, 32, 2, 1, 0, 0, unsafe.Pointer(&l.params[0]), nil))
	})
	if code(err) != 801 || !strings.Contains(err.Error(), "CUDA_ERROR_NOT_SUPPORTED") {
		t.Errorf("2-D block launch: %v, want CUDA_ERROR_NOT_SUPPORTED", err)
	}
	// A memset past the end of the scratch allocation.
	err = x.d.do(func() error {
		return drv.check("cuMemsetD8", drv.cuMemsetD8(x.scratch, 0, uint64(x.unit.ScratchBytes)+1))
	})
	if code(err) != 1 {
		t.Errorf("out-of-bounds memset: %v, want CUDA_ERROR_INVALID_VALUE", err)
	}
	// Not a module from the fake NVRTC.
	err = x.d.do(func() error {
		var m uintptr
		img := cBytes("not a module")
		return drv.check("cuModuleLoadData", drv.cuModuleLoadData(&m, unsafe.Pointer(&img[0])))
	})
	if code(err) != 200 {
		t.Errorf("loading a bad image: %v, want CUDA_ERROR_INVALID_IMAGE", err)
	}
	// A call from a thread without the context current.
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- drv.check("cuMemsetD8", drv.cuMemsetD8(x.scratch, 0, 4))
	}()
	if err := <-done; code(err) != 201 {
		t.Errorf("a call off the owner thread: %v, want CUDA_ERROR_INVALID_CONTEXT", err)
	}
	// NVRTC: a source that is not a generated unit, and one clang rejects.
	if _, err := x.d.compile("bad.cu", "int x;"); err == nil || !strings.Contains(err.Error(), "device prelude") {
		t.Errorf("compiling a non-unit: %v, want an error naming the device prelude", err)
	}
	if _, err := x.d.compile("bad.cu", codegen.PreludeSource()+"\nextern \"C\" __global__ void k(i32 n) { undeclared(n); }\n"); err == nil || !strings.Contains(err.Error(), "undeclared") {
		t.Errorf("compiling a bad kernel: %v, want clang's log naming the error", err)
	}
	// The executable still works after all that.
	c.FillInputs(1, x.F32, x.I32, plan)
	if err := x.Run("train"); err != nil {
		t.Errorf("Run after the refused calls: %v", err)
	}
}
