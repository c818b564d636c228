//go:build !amd64

package gemm

func hostKernels() []*kernel { return []*kernel{genericKernel} }
