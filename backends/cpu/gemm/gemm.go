// Package gemm is the CPU backend's single-precision matrix multiply.
//
// It follows the usual packed, cache-blocked design: op(B) is packed in blocks
// of kc x nb that stay in a core's L2, op(A) in blocks of mb x kc shared by all
// workers, and a register-blocked micro-kernel (AVX-512, AVX2+FMA or portable
// Go, chosen at start-up) multiplies an mr-row panel of A (kept in L1) by
// successive nr-column panels of B. All matrices are row-major.
package gemm

import (
	"fmt"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Blocking for the L2-resident B block (kc x nb) and the shared A block
// (mb x kc). Zen 5 has 48 KiB L1d and 1 MiB L2 per core: the A micro-panel
// (mr x kc = 12x512 floats, 24 KiB) stays near L1 while B panels stream
// through it, and the B block (512x256 floats, 512 KiB) stays in L2 with room
// for the A and C traffic. Measured on the target (2 threads, n = 1024 and
// 2048), kc from 384 to 1024 and nb from 128 to 512 are within a few percent
// of each other; the larger kc means fewer passes over C and fewer waits
// between k blocks. (With several workers, column blocks are made narrower
// still; see tasksPerWorker.)
var (
	kcMax = 512
	nbMax = 256
	mbMax = 1536
)

// minFlopsPerWorker keeps tiny products on fewer workers: waking a worker and
// splitting the packing costs more than a few microseconds of arithmetic.
var minFlopsPerWorker = 1 << 21

// active is the micro-kernel in use; tests swap it to cover every path.
var active = hostKernels()[0]

// KernelName reports which micro-kernel Sgemm uses ("avx512", "avx2" or
// "generic").
func KernelName() string { return active.name }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(X) is X or Xᵀ as transX says. op(A) is m x k, op(B) is k x n, C is m x n.
// lda, ldb and ldc are the row strides of the matrices as stored (so A is
// stored m x k, or k x m when transA). When beta is 0, C is not read (it may
// hold NaNs). C must not overlap A or B.
//
// The work is split over p's workers when it is large enough (tiny products
// stay on the calling goroutine); p may be nil, which runs on the calling
// goroutine only. Sgemm must not be called from inside a task running on p.
// It does not allocate once its buffers have grown to the largest shapes
// seen, and it is safe for concurrent use.
func Sgemm(p *pool.Pool, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ws := getWorkspace()
	ws.g = call{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	ws.g.check()
	ws.run(p)
	putWorkspace(ws)
}

// call holds the arguments of one multiplication.
type call struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	ep             Epilogue
	hasEp          bool
}

func (g *call) check() {
	if g.m < 0 || g.n < 0 || g.k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", g.m, g.n, g.k))
	}
	ar, ac := g.m, g.k
	if g.transA {
		ar, ac = ac, ar
	}
	br, bc := g.k, g.n
	if g.transB {
		br, bc = bc, br
	}
	checkMat("A", g.a, ar, ac, g.lda, g.m > 0 && g.n > 0 && g.k > 0 && g.alpha != 0)
	checkMat("B", g.b, br, bc, g.ldb, g.m > 0 && g.n > 0 && g.k > 0 && g.alpha != 0)
	checkMat("C", g.c, g.m, g.n, g.ldc, g.m > 0 && g.n > 0)
	if g.hasEp {
		if g.ep.Bias != nil && len(g.ep.Bias) < g.n {
			panic(fmt.Sprintf("gemm: len(Bias)=%d < n=%d", len(g.ep.Bias), g.n))
		}
		if g.ep.ActGradOf != nil {
			checkMat("ActGradOf", g.ep.ActGradOf, g.m, g.n, g.ldc, g.m > 0 && g.n > 0)
		}
	}
}

func checkMat(name string, x []float32, rows, cols, ld int, used bool) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: ld%s=%d < %d", name, ld, max(1, cols)))
	}
	if used && len(x) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("gemm: len(%s)=%d < %d", name, len(x), (rows-1)*ld+cols))
	}
}

// run performs ws.g on up to p.Workers() workers.
func (ws *workspace) run(p *pool.Pool) {
	g := &ws.g
	if g.m == 0 || g.n == 0 {
		return
	}
	if g.k == 0 || g.alpha == 0 {
		ws.scaleOnly()
		return
	}
	kr := active
	if g.n <= 16 && kr.narrow != nil {
		kr = kr.narrow // a 32-wide tile would be mostly padding
	}
	ws.kr = kr
	mr, nr := kr.mr, kr.nr

	nw := 1
	if p != nil {
		nw = p.Workers()
	}
	nw = max(1, min(nw, 2*g.m*g.n*g.k/minFlopsPerWorker))

	// Split k, m and n into near-equal blocks no larger than the maxima. The
	// A block is packed for all of k in one job, so each k block then takes
	// one job (one wait for the slowest worker), not two; mb bounds that
	// buffer to aMaxFloats.
	nkb := ceilDiv(g.k, kcMax)
	kc := ceilDiv(g.k, nkb)
	mbLim := max(mr, min(mbMax, aMaxFloats/g.k/mr*mr))
	nmb := ceilDiv(g.m, mbLim)
	mb := roundUp(ceilDiv(g.m, nmb), mr)
	// Column blocks are whole nr-panels, as even as possible: with 25 panels
	// in 4 blocks, 6+6+6+7 rather than 7+7+7+4.
	npan := ceilDiv(g.n, nr)
	nnb := ceilDiv(g.n, nbMax)
	if nw > 1 && npan >= 2*nw {
		// Enough columns for every worker: split n (no packing is
		// duplicated), into about tasksPerWorker blocks each, so that a
		// worker the OS delays holds up at most a small block.
		nnb = roundUp(max(nnb, min(npan/2, tasksPerWorker*nw)), nw)
	}
	nnb = min(nnb, npan)
	// Too few column blocks: also split the rows of each A block.
	msplit := 1
	if nnb < nw {
		msplit = min(ceilDiv(nw, nnb), ceilDiv(mb, mr))
	}
	ws.kc, ws.mb, ws.npan, ws.nnb, ws.msplit = kc, mb, npan, nnb, msplit
	ws.grow(nw, mb*g.k, kc*ceilDiv(npan, nnb)*nr, mr*nr)

	// k blocks run in order over all column blocks, so one packed A block
	// (mb x kc) serves every column block while it is still in cache.
	for i0 := 0; i0 < g.m; i0 += mb {
		ws.i0, ws.mc = i0, min(mb, g.m-i0)
		panels := ceilDiv(ws.mc, mr)
		if nw == 1 {
			ws.packA.tasks = 1
			ws.packA.Run(0, 0)
		} else {
			// A few slices per worker, so one slowed by the OS is covered.
			ws.packA.tasks = min(4*nw, panels)
			p.RunTaskN(ws.packA.tasks, nw, &ws.packA)
		}
		for p0 := 0; p0 < g.k; p0 += kc {
			ws.p0, ws.kcc = p0, min(kc, g.k-p0)
			if nw == 1 {
				for t := 0; t < nnb*msplit; t++ {
					ws.compute.Run(0, t)
				}
				continue
			}
			p.RunTaskN(nnb*msplit, nw, &ws.compute)
		}
	}
}

// tasksPerWorker is how many column blocks each worker gets when n allows.
// On a quiet machine 1, 2 and 4 measure the same; on a loaded one, smaller
// blocks keep a worker that the OS deschedules from holding up the job
// (tasks are handed out dynamically).
var tasksPerWorker = 4

// aMaxFloats bounds the packed A block (mb x k floats, 16 MiB).
const aMaxFloats = 1 << 22

// packATask packs the current A block for every k block; task t of tasks
// packs a slice of its panels. The k block starting at p0 is stored at
// apack[p0*panels*mr:], as panels of kc_block x mr.
type packATask struct {
	ws    *workspace
	tasks int
}

func (t *packATask) Run(_, task int) {
	ws := t.ws
	g := &ws.g
	mr := ws.kr.mr
	panels := ceilDiv(ws.mc, mr)
	tasks := max(t.tasks, 1)
	lo, hi := task*panels/tasks, (task+1)*panels/tasks
	for p0 := 0; p0 < g.k; p0 += ws.kc {
		kc := min(ws.kc, g.k-p0)
		packA(ws.apack[p0*panels*mr:], g.a, g.lda, g.transA, ws.i0, ws.mc, p0, kc, mr, g.alpha, lo, hi)
	}
}

// computeTask computes one column block (or a row range of one) of the
// current A block and k block: pack the B block, then multiply.
type computeTask struct{ ws *workspace }

func (t *computeTask) Run(w, task int) {
	ws := t.ws
	nr := ws.kr.nr
	jb, part := task%ws.nnb, task/ws.nnb
	j0 := jb * ws.npan / ws.nnb * nr
	nc := min((jb+1)*ws.npan/ws.nnb*nr, ws.g.n) - j0
	ws.block(w, part, ws.p0, ws.kcc, j0, nc)
}

// block packs the kc x nc block of op(B) at (p0, j0) and multiplies it by
// row range part of the packed A block, updating C.
func (ws *workspace) block(w, part, p0, kc, j0, nc int) {
	g := &ws.g
	kr := ws.kr
	mr, nr := kr.mr, kr.nr
	bp := ws.bpack[w]
	packB(bp, g.b, g.ldb, g.transB, p0, kc, j0, nc, nr)

	panels := ceilDiv(ws.mc, mr)
	qlo, qhi := part*panels/ws.msplit, (part+1)*panels/ws.msplit
	beta := float32(1)
	if p0 == 0 {
		beta = g.beta
	}
	last := p0+kc == g.k
	tile := ws.tile[w]
	apack := ws.apack[p0*panels*mr:]
	for q := qlo; q < qhi; q++ {
		i := ws.i0 + q*mr
		rows := min(mr, g.m-i)
		ap := &apack[q*kc*mr]
		for j := j0; j < j0+nc; j += nr {
			cols := min(nr, g.n-j)
			bq := &bp[(j-j0)*kc]
			if rows == mr && cols == nr {
				kr.fn(kc, ap, bq, &g.c[i*g.ldc+j], g.ldc, beta)
			} else {
				// Edge tile: compute into scratch, merge the valid part.
				kr.fn(kc, ap, bq, &tile[0], nr, 0)
				mergeTile(g.c[i*g.ldc+j:], g.ldc, tile, nr, rows, cols, beta)
			}
			if last && g.hasEp {
				g.applyEpilogue(i, rows, j, cols)
			}
		}
	}
}

// mergeTile sets C = T + beta·C (C = T when beta is 0) on a rows x cols tile.
func mergeTile(c []float32, ldc int, t []float32, ldt, rows, cols int, beta float32) {
	for r := 0; r < rows; r++ {
		cr := c[r*ldc : r*ldc+cols]
		tr := t[r*ldt : r*ldt+cols]
		if beta == 0 {
			copy(cr, tr)
			continue
		}
		for j, v := range tr {
			cr[j] = v + beta*cr[j]
		}
	}
}

// scaleOnly handles k == 0 or alpha == 0: C = beta·C, then the epilogue.
func (ws *workspace) scaleOnly() {
	g := &ws.g
	for i := 0; i < g.m; i++ {
		row := g.c[i*g.ldc : i*g.ldc+g.n]
		switch g.beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= g.beta
			}
		}
	}
	if g.hasEp {
		g.applyEpilogue(0, g.m, 0, g.n)
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
func roundUp(a, b int) int { return ceilDiv(a, b) * b }
