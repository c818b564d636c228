//go:build linux

// Command fakecuda builds the fake CUDA driver and NVRTC into a directory
// and prints the environment that selects them:
//
//	go run ./backends/cuda/fakecuda/cmd/fakecuda DIR [CLANG]
//
// prints EXPC_LIBCUDA=DIR/libcuda.so and EXPC_NVRTC=DIR/libnvrtc.so, one a
// line (scripts/gpu-check.sh --fake uses it). CLANG defaults to clang-14.
package main

import (
	"fmt"
	"os"

	"github.com/expc-dev/expc/backends/cuda/fakecuda"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: fakecuda DIR [CLANG]")
		os.Exit(2)
	}
	clang := "clang-14"
	if len(os.Args) == 3 {
		clang = os.Args[2]
	}
	if err := os.MkdirAll(os.Args[1], 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	libcuda, libnvrtc, err := fakecuda.Build(clang, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("EXPC_LIBCUDA=%s\nEXPC_NVRTC=%s\n", libcuda, libnvrtc)
}
