package codegen

import (
	"testing"

	"github.com/expc-dev/expc/ir"
)

// TestEveryOpHasAKernel: every op in the ir table has a CUDA generator; a
// new op fails here until its kernel family joins the table. The only
// exceptions are the ops listed in Pending (reported, never silent), and a
// listed op that gains a kernel must leave the list.
func TestEveryOpHasAKernel(t *testing.T) {
	var pending []string
	for _, d := range ir.Ops() {
		switch {
		case Has(d.Name) && Pending[d.Name]:
			t.Errorf("op %s has a CUDA kernel now: remove it from codegen.Pending", d.Name)
		case Pending[d.Name]:
			pending = append(pending, d.Name)
		case !Has(d.Name):
			t.Errorf("op %s has no CUDA kernel: add a generator (register in backends/cuda/codegen, one file per kernel family)", d.Name)
		}
	}
	for _, op := range Ops() {
		if _, ok := ir.LookupOp(op); !ok {
			t.Errorf("CUDA kernel for %s, which is not in the op table", op)
		}
	}
	for op := range Pending {
		if _, ok := ir.LookupOp(op); !ok {
			t.Errorf("codegen.Pending lists %s, which is not in the op table", op)
		}
	}
	if len(pending) > 0 {
		t.Logf("%d ops still have no CUDA kernel (codegen.Pending): %v", len(pending), pending)
	}
}
