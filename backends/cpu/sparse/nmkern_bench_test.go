package sparse

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkNMKernels times the 2:4 inner loops alone, on data sized to sit
// in L1 and in L2, in ns per vector FMA: what the products of
// BenchmarkNMDirections would take with no packing or memory stalls. On
// the reference machine the forward and weight-gradient loops are bound
// by a VPERMPS per FMA (bench/ports: 0.225 ns per FMA+VPERMPS pair against
// 0.158 for an FMA alone); the input gradient's by its class-loop exits.
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
	for _, c := range []struct{ batch, panels int }{{128, 1}, {1024, 1}, {1024, 32}} {
		b.Run(fmt.Sprintf("dw/batch=%d/panels=%d", c.batch, c.panels), func(b *testing.B) {
			x := randVec(r, c.batch*12+4)
			y := randVec(r, c.panels*c.batch*32)
			idx := make([]uint8, 3*n*32)
			for i := range idx {
				idx[i] = uint8(i / (n * 32) * 4) // the first row of each group
			}
			out := make([]float32, 12*32)
			for b.Loop() {
				for p := range c.panels {
					nmDW(n, c.batch, x, y[p*c.batch*32:], 32, idx, out, 32)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.batch*c.panels*3*n*2), "ns/vfma")
		})
	}
}
