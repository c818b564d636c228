package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// BenchmarkContrastiveFused times one forward + backward of the fused
// NT-Xent kernel over N rows (the N×N similarity matrix) at d = 128:
//
//	go test ./backends/cpu -run '^$' -bench ContrastiveFused -benchtime 5x
func BenchmarkContrastiveFused(b *testing.B) {
	for _, obj := range []string{"nt_xent", "dual"} {
		for _, n := range []int{1024, 4096, 8192} {
			for _, tile := range []int{256} {
				b.Run(fmt.Sprintf("%s/N=%d/tile=%d", obj, n, tile), func(b *testing.B) {
					const d = 128
					r := rand.New(rand.NewPCG(1, 2))
					attrs := ir.Attrs{"objective": obj, "inv_temperature": 10.0, "normalize": true, "tile": tile}
					ins := []arg{f32Arg(normals(r, n*d, 1), n, d)}
					if obj == "dual" {
						ins = append(ins, f32Arg(normals(r, n*d, 1), n, d))
					}
					ins = append(ins, f32Arg([]float32{1}))
					x := prepareOp(b, New(0), "contrastive_xent_fused", attrs, ins)
					for b.Loop() {
						if err := x.Run("p"); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// prepareOp binds one kernel to fresh buffers filled with ins.
func prepareOp(t testing.TB, be *Backend, op string, attrs ir.Attrs, ins []arg) *Executable {
	t.Helper()
	pb := newPlanBuilder()
	var inIDs, outIDs []int
	var types []ir.Type
	for i, a := range ins {
		inIDs = append(inIDs, pb.buf("in"+itoa(i), ir.BufInput, a.t))
		types = append(types, a.t)
	}
	outs, err := ir.InferTypes(op, types, attrs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		outIDs = append(outIDs, pb.buf("out"+itoa(i), ir.BufTemp, o))
	}
	pb.kernel("p", op, inIDs, outIDs, attrs)
	x, err := be.prepare(pb.build())
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range ins {
		if a.t.DType == ir.F32 {
			copy(x.F32(inIDs[i]), a.f)
		} else {
			copy(x.I32(inIDs[i]), a.i)
		}
	}
	return x
}
