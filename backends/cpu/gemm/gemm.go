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
// (mr x kc = 12x384 floats, 18 KiB) sits in L1 next to the streaming B
// panels, the B block (384x512, 768 KiB) in L2.
var (
	kcMax = 384
	nbMax = 512
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
// hold NaNs). p may be nil, which runs on the calling goroutine only.
//
// Sgemm does not allocate once its per-worker buffers have grown to the
// largest shapes seen.
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
	ws.kr = kr
	mr, nr := kr.mr, kr.nr

	nw := 1
	if p != nil {
		nw = p.Workers()
	}
	nw = max(1, min(nw, 2*g.m*g.n*g.k/minFlopsPerWorker))

	// Split k, m and n into near-equal blocks no larger than the maxima.
	nkb := ceilDiv(g.k, kcMax)
	kc := ceilDiv(g.k, nkb)
	nmb := ceilDiv(g.m, mbMax)
	mb := roundUp(ceilDiv(g.m, nmb), mr)
	nnb := ceilDiv(g.n, nbMax)
	if nw > 1 && g.n >= nw*2*nr {
		// Enough columns for every worker: split n (no packing is duplicated).
		nnb = roundUp(nnb, nw)
	}
	nb := roundUp(ceilDiv(g.n, nnb), nr)
	nnb = ceilDiv(g.n, nb)
	// Too few column blocks: also split the rows of each A block.
	msplit := 1
	if nnb < nw {
		msplit = min(ceilDiv(nw, nnb), ceilDiv(mb, mr))
	}
	ws.kc, ws.mb, ws.nb, ws.nnb, ws.msplit = kc, mb, nb, nnb, msplit
	ws.grow(nw, mb*kc, kc*nb, mr*nr)

	for i0 := 0; i0 < g.m; i0 += mb {
		mc := min(mb, g.m-i0)
		panels := ceilDiv(mc, mr)
		for p0 := 0; p0 < g.k; p0 += kc {
			ws.i0, ws.mc, ws.p0, ws.kcc = i0, mc, p0, min(kc, g.k-p0)
			if nw == 1 {
				ws.packA.tasks = 1
				ws.packA.Run(0, 0)
				for t := 0; t < nnb*msplit; t++ {
					ws.compute.Run(0, t)
				}
				continue
			}
			ws.packA.tasks = min(nw, panels)
			p.RunTask(ws.packA.tasks, &ws.packA)
			p.RunTask(nnb*msplit, &ws.compute)
		}
	}
}

// packATask packs the current A block; task t of tasks packs a slice of its
// panels.
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
	packA(ws.apack, g.a, g.lda, g.transA, ws.i0, ws.mc, ws.p0, ws.kcc, mr, g.alpha, lo, hi)
}

// computeTask packs one B block and multiplies it by (a row range of) the
// packed A block.
type computeTask struct{ ws *workspace }

func (t *computeTask) Run(w, task int) {
	ws := t.ws
	g := &ws.g
	kr := ws.kr
	mr, nr := kr.mr, kr.nr
	kc := ws.kcc
	jb, part := task%ws.nnb, task/ws.nnb
	j0 := jb * ws.nb
	nc := min(ws.nb, g.n-j0)
	bp := ws.bpack[w]
	packB(bp, g.b, g.ldb, g.transB, ws.p0, kc, j0, nc, nr)

	panels := ceilDiv(ws.mc, mr)
	qlo, qhi := part*panels/ws.msplit, (part+1)*panels/ws.msplit
	beta := float32(1)
	if ws.p0 == 0 {
		beta = g.beta
	}
	last := ws.p0+kc == g.k
	tile := ws.tile[w]
	for q := qlo; q < qhi; q++ {
		i := ws.i0 + q*mr
		rows := min(mr, g.m-i)
		ap := &ws.apack[q*kc*mr]
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
