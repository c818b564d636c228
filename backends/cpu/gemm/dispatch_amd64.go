package gemm

import "golang.org/x/sys/cpu"

//go:generate go run kernel_gen.go

var (
	avx512Kernel = &kernel{name: "avx512", mr: 12, nr: 32, fn: kernAVX512}
	avx2Kernel   = &kernel{name: "avx2", mr: 6, nr: 16, fn: kernAVX2}
)

// hostKernels lists the kernels this CPU can run, fastest first.
func hostKernels() []*kernel {
	var ks []*kernel
	// The OS must also save the wide registers; x/sys/cpu folds that
	// (XGETBV) into these flags.
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, genericKernel)
}
