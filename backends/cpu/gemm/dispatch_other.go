//go:build !amd64

package gemm

func hostKernels() []*kernel { return []*kernel{genericKernel} }

func transposeVec(dst *float32, dstStride int, src *float32, ld, rows, blocks int, mask uint16, alpha float32) {
	panic("unreachable")
}

func copyVec(dst *float32, dstStride int, src *float32, srcStride, n int, mask uint16, alpha float32) {
	panic("unreachable")
}
