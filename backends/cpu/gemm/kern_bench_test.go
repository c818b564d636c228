package gemm

import "testing"

var benchMask = -1

// BenchmarkKernel measures the micro-kernels alone on L1/L2-resident panels.
func BenchmarkKernel(b *testing.B) {
	for _, kr := range hostKernels() {
		b.Run(kr.name, func(b *testing.B) {
			const kc = 384
			a := make([]float32, kc*kr.mr)
			bp := make([]float32, kc*kr.nr*16)
			c := make([]float32, kr.mr*kr.nr*16)
			for i := range a {
				a[i] = 1
			}
			for b.Loop() {
				for j := 0; j < 16; j++ {
					kr.fn(kc, &a[0], &bp[(j*kc*kr.nr)&benchMask], &c[j*kr.nr], kr.nr*16, 1)
				}
			}
			b.ReportMetric(2*float64(kc*kr.mr*kr.nr*16)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkKernelL1(b *testing.B) {
	benchMask = 0
	defer func() { benchMask = -1 }()
	BenchmarkKernel(b)
}
