package gemm

import "github.com/expc-dev/expc/backends/cpu/pool"

// Epilogue describes element-wise work fused into a matrix multiply. It is
// applied to each tile of C right after the tile's last k-block is computed,
// while the tile is still in L1, instead of in a second pass over C:
//
//	v = op(A)·op(B)                      (+ C if Accumulate)
//	v += Bias[j]                         if Bias != nil
//	C = v · act'(ActGradOf[i,j])         if ActGradOf != nil (backward)
//	C = act(v)                           otherwise (forward)
//
// ActGradOf has C's shape and stride (ldc) and must not overlap C.
type Epilogue struct {
	Bias       []float32 // len ≥ n, added to every row
	Act        Act
	ActGradOf  []float32 // pre-activation values; selects the gradient form
	Accumulate bool      // add to C (beta = 1) instead of overwriting it
}

// SgemmEpilogue computes C = epilogue(op(A)·op(B)) as described by ep; see
// Sgemm for the layout of the arguments.
func SgemmEpilogue(p *pool.Pool, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, ep Epilogue) {
	ws := getWorkspace()
	var beta float32
	if ep.Accumulate {
		beta = 1
	}
	ws.g = call{transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc,
		ep: ep, hasEp: ep.Bias != nil || ep.Act != None || ep.ActGradOf != nil}
	ws.g.check()
	ws.run(p)
	putWorkspace(ws)
}

// applyEpilogue finishes the rows x cols tile of C at (i, j).
func (g *call) applyEpilogue(i, rows, j, cols int) {
	ep := &g.ep
	var bias []float32
	if ep.Bias != nil {
		bias = ep.Bias[j : j+cols]
	}
	if actVec != nil {
		op := int(ep.Act)
		var bp, pp *float32
		if bias != nil {
			bp = &bias[0]
		}
		if ep.ActGradOf != nil {
			op += 8
			pp = &ep.ActGradOf[i*g.ldc+j]
		}
		actVec(op, &g.c[i*g.ldc+j], g.ldc, rows, cols, bp, pp)
		return
	}
	for r := i; r < i+rows; r++ {
		row := g.c[r*g.ldc+j : r*g.ldc+j+cols]
		if ep.ActGradOf != nil {
			if bias != nil {
				applyActGo(None, row, bias)
			}
			mulActGradGo(ep.Act, row, ep.ActGradOf[r*g.ldc+j:r*g.ldc+j+cols])
		} else {
			applyActGo(ep.Act, row, bias)
		}
	}
}
