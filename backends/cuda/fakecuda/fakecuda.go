//go:build linux

// Package fakecuda builds a fake CUDA driver (libcuda.so) and a fake NVRTC
// (libnvrtc.so) that run the CUDA backend's real launch path — New,
// Prepare, Run, the status word, errors — on this machine: NVRTC turns the
// generated CUDA into host C++ (as hostsim.HostSource does) and builds a
// shared library with clang; the driver gives host memory for device memory
// and runs each launch on the hostsim SIMT emulator, which it links.
//
// expc itself stays cgo-free: the fakes are separate C++ libraries, built by
// tests and scripts/gpu-check.sh --fake, and loaded through the backend's
// EXPC_LIBCUDA and EXPC_NVRTC overrides.
package fakecuda

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/hostsim"
)

// expcLibraryPrefix starts the fake NVRTC's "CUBIN": the text after it is
// the path of the module's shared library.
const expcLibraryPrefix = "expc-fakecuda-library:"

// The one inline PTX outside the device prelude, and its host form: the
// same pair as in hostsim.HostSource (TestHostSourceMatches checks that the
// fake NVRTC's conversion equals HostSource on every kernel case).
const (
	fmulDevice = `{ float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }`
	fmulHost   = `{ return a * b; }`
)

// Build compiles the fake libcuda.so and libnvrtc.so into dir with clang;
// the fake NVRTC later writes its modules there too and runs the same
// clang, so dir must outlive their use.
func Build(clang, dir string) (libcuda, libnvrtc string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	if clang, err = exec.LookPath(clang); err != nil {
		return "", "", fmt.Errorf("fakecuda: %w", err)
	}
	if clang, err = filepath.Abs(clang); err != nil {
		return "", "", err
	}
	rt, err := hostsim.BuildRuntime(clang, dir)
	if err != nil {
		return "", "", fmt.Errorf("fakecuda: %w", err)
	}
	cfg, err := config(clang, dir)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "fakecuda_config.h"), []byte(cfg), 0o644); err != nil {
		return "", "", err
	}
	libcuda = filepath.Join(dir, "libcuda.so")
	libnvrtc = filepath.Join(dir, "libnvrtc.so")
	if err := compile(clang, dir, "libcuda.cc", libcudaSource, libcuda, rt, "-ldl", "-lstdc++"); err != nil {
		return "", "", err
	}
	if err := compile(clang, dir, "libnvrtc.cc", libnvrtcSource, libnvrtc, "-lstdc++"); err != nil {
		return "", "", err
	}
	return libcuda, libnvrtc, nil
}

func compile(clang, dir, name, src, out string, extra ...string) error {
	in := filepath.Join(dir, name)
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		return err
	}
	args := append([]string{"-x", "c++", "-std=c++17", "-O1", "-fPIC", "-shared", "-I", dir, in, "-x", "none"}, extra...)
	args = append(args, "-o", out)
	if msg, err := exec.Command(clang, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("fakecuda: compiling %s: %v\n%s", name, err, msg)
	}
	return nil
}

// config is fakecuda_config.h: what the fake NVRTC needs from the Go side,
// as C++ string literals.
func config(clang, dir string) (string, error) {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"ex_clang", clang},
		{"ex_workdir", dir},
		{"ex_library_prefix", expcLibraryPrefix},
		{"ex_device_prelude", codegen.PreludeSource()},
		{"ex_host_prelude", hostsim.Prelude()},
		{"ex_fmul_device", fmulDevice},
		{"ex_fmul_host", fmulHost},
	} {
		lit, err := cString(kv[1])
		if err != nil {
			return "", fmt.Errorf("fakecuda: %s: %w", kv[0], err)
		}
		fmt.Fprintf(&b, "static const char %s[] = %s;\n", kv[0], lit)
	}
	return b.String(), nil
}

// cString is s as a C++ string literal: a raw literal for the long
// preludes, an escaped one for paths.
func cString(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("contains a NUL byte")
	}
	const delim = "EXPCFAKE"
	if strings.Contains(s, "\n") {
		if strings.Contains(s, ")"+delim+`"`) {
			return "", fmt.Errorf("contains the raw-string delimiter")
		}
		return `R"` + delim + "(" + s + ")" + delim + `"`, nil
	}
	// strconv.Quote's escapes (\", \\, \xNN, \uNNNN) are C++'s too for ASCII.
	q := strconv.QuoteToASCII(s)
	if strings.Contains(q, `\u`) || strings.Contains(q, `\U`) {
		return "", fmt.Errorf("%q is not ASCII", s)
	}
	return q, nil
}
