package gemm

import "unsafe"

// kernel describes a micro-kernel: it multiplies an mr x k packed panel of A by
// a k x nr packed panel of B and writes the mr x nr tile of C at c (rows ldc
// apart): C = acc if beta == 0 (C is not read), else C = acc + beta*C.
type kernel struct {
	name   string
	mr, nr int
	fn     func(k int, a, b, c *float32, ldc int, beta float32)
	narrow *kernel // optional variant with nr = 16 for n ≤ 16
}

// Portable fallback, also used to test the driver. 4x16 keeps the 64
// accumulators in a local array the compiler can keep on the stack.
var genericKernel = &kernel{name: "generic", mr: genMR, nr: genNR, fn: kernGeneric}

const genMR, genNR = 4, 16

func kernGeneric(k int, a, b, c *float32, ldc int, beta float32) {
	var acc [genMR * genNR]float32
	ap := unsafe.Slice(a, k*genMR)
	bp := unsafe.Slice(b, k*genNR)
	for p := 0; p < k; p++ {
		av := ap[p*genMR : p*genMR+genMR : p*genMR+genMR]
		bv := bp[p*genNR : p*genNR+genNR : p*genNR+genNR]
		for i, x := range av {
			row := acc[i*genNR : i*genNR+genNR : i*genNR+genNR]
			for j, y := range bv {
				row[j] += x * y
			}
		}
	}
	cp := unsafe.Slice(c, (genMR-1)*ldc+genNR)
	for i := 0; i < genMR; i++ {
		row := cp[i*ldc : i*ldc+genNR : i*ldc+genNR]
		src := acc[i*genNR : i*genNR+genNR]
		if beta == 0 {
			copy(row, src)
			continue
		}
		for j := range row {
			row[j] = src[j] + beta*row[j]
		}
	}
}
