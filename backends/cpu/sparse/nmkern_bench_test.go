package sparse

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkNMKernels times the 2:4 inner loops alone, on data sized to sit
// in L1 and in L2, in ns per vector FMA: what the products of
// BenchmarkNMDirections would take with no packing or memory stalls. On
// the reference machine the forward loop is bound by a VPERMPS per FMA
// (bench/ports: 0.225 ns per FMA+VPERMPS pair against 0.158 for an FMA
// alone); the weight gradient's runs by reading dYᵀ from L2.
//
//	go test -run XXX -bench NMKernels ./backends/cpu/sparse
func BenchmarkNMKernels(b *testing.B) {
	const n, ldx = 2, 1024
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ groups, panels int }{{32, 1}, {256, 4}} {
		b.Run(fmt.Sprintf("fwd/groups=%d/panels=%d", c.groups, c.panels), func(b *testing.B) {
			x := randVec(r, nmRows*ldx+64)
			per := 32 * n
			wp := randVec(r, c.panels*c.groups*per)
			ip := make([]uint32, c.panels*c.groups*32) // index 0 everywhere: the timing does not depend on it
			out := make([]float32, nmRows*32)
			for b.Loop() {
				for p := range c.panels {
					nmFwd(n, c.groups, x, ldx, wp[p*c.groups*per:], ip[p*c.groups*32:], out, 32, 0)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.groups*c.panels*nmRows*2*n), "ns/vfma")
		})
	}
	s := Shape{Batch: 1024, Rows: 1024, Cols: 1024}
	k := NewNM(s, Input, n)
	k.Build(randomMask(r, "nm", s.Rows, s.Cols, 0))
	yt := randVec(r, nmChunk*lanes)
	for _, groups := range []int{8, 256} {
		b.Run(fmt.Sprintf("dx/groups=%d", groups), func(b *testing.B) {
			wp := randVec(r, groups*nmDXGroup(n))
			acc := make([]float32, groups*4*lanes)
			cnt := k.ccnt[:groups*k.classes]
			entries := 0
			for _, c := range cnt {
				entries += int(c)
			}
			ent := k.cent[:entries]
			for b.Loop() {
				nmDX(n, groups, cnt, ent, wp, yt, acc, false)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(entries*n*lanes/16), "ns/vfma")
		})
	}
	// The 2:4 weight gradient: every pair's runs over one chunk of 128
	// batch rows, dYᵀ of 1024 columns (512 KiB) in L2 as in the product.
	kw := NewNM(s, Weight, n)
	kw.Build(randomMask(r, "nm", s.Rows, s.Cols, 0))
	b.Run("dw/runs", func(b *testing.B) {
		xt := randVec(r, 16*kw.witems()*nmDWChunk)
		yt := randVec(r, (s.Cols+1)*nmDWChunk)
		clear(yt[s.Cols*nmDWChunk:])
		sums := make([]float32, kw.wpoff[len(kw.wpoff)-1])
		pairs := len(kw.wstart) - 1
		for b.Loop() {
			for q := range pairs {
				nmDWRuns(kw.wruns[kw.wstart[q]:kw.wstart[q+1]], xt[8*q*nmDWChunk:], yt, sums[kw.wpoff[q]:kw.wpoff[q+1]], s.Cols, false, nil, nil)
			}
		}
		fmas := float64(len(sums)) * nmDWChunk / 16 // 16 sums a block, each 128 lanes: including the padding columns
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fmas, "ns/vfma")
		b.ReportMetric(float64(len(sums))/float64(s.Rows*s.Cols/2), "padded/kept")
	})
}
