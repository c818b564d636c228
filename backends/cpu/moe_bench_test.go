package cpu

import (
	"testing"

	"github.com/expc-dev/expc/ir"
)

// BenchmarkMoEExperts times moe_ffn and moe_ffn_grad at the bench shape
// (4096 tokens, top-2, 8 experts of 256-1024-256, uneven loads) on 2
// workers, with the experts run side by side and one after another:
//
//	go test ./backends/cpu -run XXX -bench MoEExperts -benchtime 10x
func BenchmarkMoEExperts(b *testing.B) {
	const T, d, H, E, k = 4096, 256, 1024, 8, 2
	r := newRand(b)
	S := T * k
	perm := make([]int32, S)
	for i := range perm {
		perm[i] = int32(r.IntN(T))
	}
	// Uneven loads: 1.4 down to 0.7 of the mean, the rest on the last expert.
	off := make([]int32, E+1)
	for e := 0; e < E-1; e++ {
		off[e+1] = off[e] + int32(S/E*(14-e)/10)
	}
	off[E] = int32(S)
	ws := []value{}
	for _, shape := range [][]int{{d, H}, {H}, {H, d}, {d}} {
		for range E {
			n := 1
			for _, s := range shape {
				n *= s
			}
			ws = append(ws, fv(normals(r, n, 0.05), shape...))
		}
	}
	x := fv(normals(r, T*d, 1), T, d)
	fa := ir.Attrs{"experts": E, "act": "relu"}
	fwd := append([]value{x, iv(perm, S), iv(off, E+1)}, ws...)
	ga := ir.Attrs{"experts": E, "act": "relu", "dx": true}
	bwd := []value{fv(normals(r, S*d, 1), S, d), fv(normals(r, S*d, 1), S, d), fv(normals(r, S*H, 1), S, H), iv(off, E+1)}
	bwd = append(append(bwd, ws[:E]...), ws[2*E:3*E]...)
	defer func(c int) { moeChunkRows = c }(moeChunkRows)
	for _, mode := range []struct {
		name  string
		force int
		chunk int
	}{{"side-by-side/chunk512", 1, 512}, {"side-by-side/chunk768", 1, 768}, {"side-by-side/whole", 1, 1 << 20}, {"one-after-another", -1, 768}} {
		moeChunkRows = mode.chunk
		for _, op := range []struct {
			name  string
			attrs ir.Attrs
			ins   []value
		}{{"moe_ffn", fa, fwd}, {"moe_ffn_grad", ga, bwd}} {
			b.Run(mode.name+"/"+op.name, func(b *testing.B) {
				moeForceParallel = mode.force
				defer func() { moeForceParallel = 0 }()
				x, run := prepareOne(b, 2, op.name, op.attrs, op.ins)
				defer x.Close()
				for b.Loop() {
					run()
				}
			})
		}
	}
}
