// Package sparse holds the CPU backend's masked-matmul kernels: the
// products of a layer whose weight W [rows=in, cols=out] is multiplied by a
// 0/1 mask M before use, for each way a mask can be compressed.
//
//	forward   C[b, j] = epilogue(Σ_k A[b, k]·(W⊙M)[k, j])     (A: B x rows, C: B x cols)
//	input     C[b, k] = epilogue(Σ_j A[b, j]·(W⊙M)[k, j])     (A = dY: B x cols, C: B x rows)
//	weight    D[k, j] = M[k, j]·Σ_b X[b, k]·dY[b, j]           (D: rows x cols)
//
// A kernel keeps the compressed form of its mask (index lists, occupied
// tiles) and rebuilds it only when the mask's generation changes (see
// ir/optable_sparse.go); the weight values are read every call, since the
// optimizer changes them every step.
//
// Formats: Lists (CSR-like index lists per output column, used for the
// unstructured and N:M kernels of the forward and input products, with an
// AVX-512 SpMM), Block (occupied 32x32 tiles, dense micro-kernels over
// them) and SDDMM for the weight gradient at kept positions.
package sparse

import (
	"runtime"
	"sync/atomic"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Dir is which product of a masked layer a kernel computes.
type Dir uint8

const (
	Forward Dir = iota // A·(W⊙M)
	Input              // A·(W⊙M)ᵀ
	Weight             // (Xᵀ·dY)⊙M
)

// Epilogue is the element-wise work after a forward or input product:
// bias and activation (forward) or the activation's gradient (input).
type Epilogue struct {
	Bias []float32 // len = output columns
	Act  gemm.Act
	Pre  []float32 // pre-activation, the output's shape: selects act'
}

func (e *Epilogue) empty() bool { return e.Bias == nil && e.Act == gemm.None && e.Pre == nil }

// apply runs the epilogue over rows [lo, hi) of c (cols wide).
func (e *Epilogue) apply(c []float32, cols, lo, hi int) {
	if e.empty() {
		return
	}
	for r := lo; r < hi; r++ {
		row := c[r*cols : (r+1)*cols]
		if e.Bias != nil {
			b := e.Bias[:cols]
			for j := range row {
				row[j] += b[j]
			}
		}
		if e.Pre != nil {
			gemm.MulActGrad(e.Act, row, e.Pre[r*cols:(r+1)*cols])
		} else {
			gemm.ApplyAct(e.Act, row)
		}
	}
}

// Shape is a masked layer's product: W is Rows x Cols and the dense operand
// has Batch rows.
type Shape struct {
	Batch, Rows, Cols int
}

// Kernel is one product of one masked layer.
type Kernel interface {
	// Build prepares the compressed form of mask (Rows x Cols, 0/1).
	Build(mask []float32)
	// Run computes the product: a is the dense operand (X or dY), w the
	// weight, dy the second operand of the weight gradient (nil otherwise),
	// c the output.
	Run(p *pool.Pool, a, w, dy, c []float32, ep *Epilogue)
	// Density is the fraction of weights the built mask keeps.
	Density() float64
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// tasksPerWorker is how many chunks a parallel loop is cut into per worker.
const tasksPerWorker = 16

// rangeTask runs fn over [0, n) in contiguous chunks of whole grains, up
// to tasksPerWorker of them per worker, which the pool hands out as
// workers come free: on a shared machine a core slowed by another user
// then does less of the work instead of holding up the call. fn gets its
// worker index. It allocates one closure per call only when a caller
// passes a fresh one: kernels keep theirs.
type rangeTask struct {
	fn    func(w, lo, hi int)
	n     int
	size  int
	tasks int
}

func (t *rangeTask) Run(w, task int) {
	lo := task * t.size
	t.fn(w, lo, min(lo+t.size, t.n))
}

func (t *rangeTask) run(p *pool.Pool, n, grain int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	workers := 1
	if p != nil {
		workers = p.Workers()
	}
	grain = max(grain, 1)
	tasks := min(tasksPerWorker*workers, max(1, n/grain))
	t.fn, t.n, t.size = fn, n, ceilDiv(ceilDiv(n, tasks), grain)*grain // chunks of whole grains
	t.tasks = ceilDiv(n, t.size)
	if p == nil || t.tasks == 1 {
		fn(0, 0, n)
		return
	}
	p.RunTask(t.tasks, t)
}

// waitFor spins until c reaches n, yielding after a while: a parallel
// step waits so for an earlier step that another worker is running.
func waitFor(c *atomic.Int32, n int32) {
	for i := 0; c.Load() < n; i++ {
		if i > 1000 {
			runtime.Gosched()
		}
	}
}
