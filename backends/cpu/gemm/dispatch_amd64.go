package gemm

import "golang.org/x/sys/cpu"

//go:generate go run kernel_gen.go

var (
	avx512Kernel = &kernel{name: "avx512", mr: 12, nr: 32, fn: kernAVX512,
		narrow: &kernel{name: "avx512-n16", mr: 16, nr: 16, fn: kernAVX512N16}}
	avx2Kernel = &kernel{name: "avx2", mr: 6, nr: 16, fn: kernAVX2}
)

func init() {
	if cpu.X86.HasAVX512F {
		actVec = actAVX512
		hasVecPack = true
	}
}

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
