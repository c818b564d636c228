package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/expc-dev/expc/ir"
)

func TestReduceSum(t *testing.T) {
	r := newRand(t)
	shapes := [][]int{{1}, {257}, {70001}, {7, 33}, {257, 7}, {1, 257, 7}, {33, 7, 257}, {2, 1, 3, 33}, {300, 257}}
	for _, be := range testPools {
		for _, shape := range shapes {
			for axis := range shape {
				x := normals(r, int(ir.Shape(shape).Elems()), 1)
				out, _ := ir.InferTypes("reduce_sum", []ir.Type{ir.Tensor(ir.F32, shape...)}, ir.Attrs{"axis": axis})
				got := runOp(t, be, "reduce_sum", ir.Attrs{"axis": axis}, []arg{f32Arg(x, shape...)}, out[0])[0]

				outer, d, inner := 1, shape[axis], 1
				for _, n := range shape[:axis] {
					outer *= n
				}
				for _, n := range shape[axis+1:] {
					inner *= n
				}
				want, mag := make([]float64, outer*inner), make([]float64, outer*inner)
				for o := range outer {
					for j := range d {
						for i := range inner {
							v := float64(x[(o*d+j)*inner+i])
							want[o*inner+i] += v
							mag[o*inner+i] += math.Abs(v)
						}
					}
				}
				// Accumulated in float64, rounded once: 1 ulp of the sum
				// (plus a hair of Σ|x| for cancellation).
				what := fmt.Sprintf("reduce_sum %v axis %d", shape, axis)
				for i := range want {
					if diff := math.Abs(float64(got[i]) - want[i]); !(diff <= 6e-8*math.Abs(want[i])+1e-12*mag[i]) {
						t.Fatalf("%s [%d] = %.9g, want %.9g", what, i, got[i], want[i])
					}
				}
			}
		}
	}
}
