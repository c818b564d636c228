package sparse

import "github.com/expc-dev/expc/backends/cpu/pool"

// The 2:4 weight gradient as dot products over the batch. The tile kernel
// (nmDW) gives each column lane its own input with a VPERMPS per FMA, and
// that permute shares a pipe with the FMAs (bench/ports). Here the batch
// rows are the lanes: for a pair of groups (eight rows of W) the columns
// are sorted by which four of the eight rows they keep (36 row sets), in
// blocks of four columns with one row set, and a block is 16 dot products
// of four rows of Xᵀ with four columns of dYᵀ, reduced once per chunk of
// 128 batch rows into 16 sums (wsum) that add up over the chunks. The
// last chunk scatters each pair's sums into its eight dense rows of dW.
//
// A chunk of dYᵀ (512 KiB at 1024 columns) sits in L2 while a worker's
// pairs pass; Xᵀ and dYᵀ of all chunks are transposed first, in one pass.

const nmDWChunk = 128 // batch rows per chunk (the kernel's eight vectors)

// buildWeightRuns writes each pair's runs: per row set (r0 | r1<<4 | r2<<8
// | r3<<12, rows of the pair; a missing last group keeps its rows 4 and 5,
// which are zero), the block count, then the columns, four a block, the
// last block padded with the zero column cols.
func (k *NM) buildWeightRuns() {
	cols, n := k.s.Cols, k.n
	pairs := ceilDiv(k.groups, 2)
	k.wstart = grow(k.wstart, pairs+1)
	k.wpoff = grow(k.wpoff, pairs+1)
	k.wruns, k.wdst = k.wruns[:0], k.wdst[:0]
	byKey := map[uint16][]uint16{} // build time only
	var keys []uint16
	var sums int32
	for q := range pairs {
		clear(byKey)
		keys = keys[:0]
		for j := range cols {
			var key uint16
			for h := range 2 {
				g := 2*q + h
				for s := range n {
					r := uint16(4*h + s)
					if g < k.groups {
						r = uint16(4*h) + uint16(k.idx[(g*n+s)*cols+j])
					}
					key |= r << (4 * (2*h + s))
				}
			}
			if _, ok := byKey[key]; !ok {
				keys = append(keys, key)
			}
			byKey[key] = append(byKey[key], uint16(j))
		}
		k.wstart[q], k.wpoff[q] = int32(len(k.wruns)), sums
		for _, key := range keys {
			js := byKey[key]
			for len(js)%4 != 0 {
				js = append(js, uint16(cols))
			}
			k.wruns = append(k.wruns, key, uint16(len(js)/4))
			k.wruns = append(k.wruns, js...)
			sums += int32(4 * len(js))
			for _, j := range js { // where each sum goes in the pair's rows of dW
				for r := range 4 {
					o := int32(-1)
					if row := int(key>>(4*r)) & 15; int(j) < cols && 8*q+row < k.s.Rows {
						o = int32(row*cols + int(j))
					}
					k.wdst = append(k.wdst, o)
				}
			}
		}
	}
	k.wstart[pairs], k.wpoff[pairs] = int32(len(k.wruns)), sums
}

// runWeightRuns is the weight gradient's Run on the runs path: Xᵀ and dYᵀ
// of every chunk first, then each worker takes a fixed share of the pairs
// through all chunks, so a chunk of dYᵀ stays in L2 while the worker's
// pairs pass.
func (k *NM) runWeightRuns(p *pool.Pool, workers int) {
	rows, cols := k.s.Rows, k.s.Cols
	chunks := ceilDiv(k.s.Batch, nmDWChunk)
	k.wsum = growF(k.wsum, int(k.wpoff[len(k.wpoff)-1]))
	xtRows, ytRows := 16*k.witems(), cols+1 // zero past the last input; column cols is the padding column
	if len(k.wxt) < chunks*xtRows*nmDWChunk {
		k.wxt = make([]float32, chunks*xtRows*nmDWChunk)
		k.wyt = make([]float32, chunks*ytRows*nmDWChunk)
	}
	if nb := k.s.Batch - (chunks-1)*nmDWChunk; nb < nmDWChunk { // the short last chunk's lanes past nb stay zero
		clear(k.wxt[(chunks-1)*xtRows*nmDWChunk : chunks*xtRows*nmDWChunk])
		clear(k.wyt[(chunks-1)*ytRows*nmDWChunk : chunks*ytRows*nmDWChunk])
	}
	k.tWTrans.run(p, chunks*(ceilDiv(rows, 16)+ceilDiv(cols, 16)), 8, k.fWTrans)
	items := k.witems()
	k.tMul.run(p, items, ceilDiv(items, workers), k.fMul)
}

// witems is the number of sixteen-row slices of W (two pairs each).
func (k *NM) witems() int { return ceilDiv(ceilDiv(k.groups, 2), 2) }

// transposeChunks writes units [lo, hi) of Xᵀ and dYᵀ: per chunk, the
// sixteen-column blocks of X, then those of dY.
func (k *NM) transposeChunks(_, lo, hi int) {
	rows, cols := k.s.Rows, k.s.Cols
	xb, yb := ceilDiv(rows, 16), ceilDiv(cols, 16)
	xtRows, ytRows := 16*k.witems(), cols+1
	for u := lo; u < hi; u++ {
		ch, c := u/(xb+yb), u%(xb+yb)
		b0 := ch * nmDWChunk
		nb := min(nmDWChunk, k.s.Batch-b0)
		if c < xb {
			c0 := 16 * c
			transpose(k.wxt[(ch*xtRows+c0)*nmDWChunk:], nmDWChunk, k.a[b0*rows+c0:], rows, 0, nb, min(16, rows-c0))
			continue
		}
		c0 := 16 * (c - xb)
		transpose(k.wyt[(ch*ytRows+c0)*nmDWChunk:], nmDWChunk, k.dy[b0*cols+c0:], cols, 0, nb, min(16, cols-c0))
	}
}

// weightItems runs items [lo, hi) (item i: the pairs 2i and 2i+1, rows
// 16i.. of W) through every chunk; in the last, the kernel writes the
// sums into the pair's rows of dW, cleared first for the pruned weights.
func (k *NM) weightItems(_, lo, hi int) {
	rows, cols := k.s.Rows, k.s.Cols
	pairs := ceilDiv(k.groups, 2)
	chunks := ceilDiv(k.s.Batch, nmDWChunk)
	xtRows, ytRows := 16*k.witems(), cols+1
	q0, q1 := 2*lo, min(2*hi, pairs)
	for ch := range chunks {
		yt := k.wyt[ch*ytRows*nmDWChunk : (ch+1)*ytRows*nmDWChunk]
		for q := q0; q < q1; q++ {
			xt := k.wxt[(ch*xtRows+8*q)*nmDWChunk:]
			// The next pair's rows of Xᵀ (4 KiB), into L2 while this pair
			// runs. Reading one pair's rows for every pair made the kernel
			// 6% faster; the prefetch gets back about 1% of it (the rest
			// is reading them from L2, not L1).
			nq, nch := q+1, ch // the next pair: this worker's first in the next chunk after its last
			if nq == q1 {
				nq, nch = q0, ch+1
			}
			if nch < chunks {
				at := (nch*xtRows + 8*nq) * nmDWChunk
				prefetch(k.wxt[at : at+8*nmDWChunk])
			}
			var dst []int32
			var dw []float32
			if ch == chunks-1 {
				dst, dw = k.wdst[k.wpoff[q]:k.wpoff[q+1]], k.c[8*q*cols:min(8*q+8, rows)*cols]
				clear(dw)
			}
			nmDWRuns(k.wruns[k.wstart[q]:k.wstart[q+1]], xt, yt, k.wsum[k.wpoff[q]:k.wpoff[q+1]], cols, ch == 0, dst, dw)
		}
	}
}

// nmDWRunsGo is the portable nmDWRuns: per block b of the runs, the sums
// S[4e+r] = Σ_{l<128} xt[r_r·128 + l]·yt[j_e·128 + l] (+ p[16b+4e+r]
// unless first) go to p[16b+4e+r], or, with dst, to dw[dst[16b+4e+r]]
// where that is not negative; cols bounds the columns (cols itself is the
// zero padding column).
func nmDWRunsGo(runs []uint16, xt, yt, p []float32, cols int, first bool, dst []int32, dw []float32) {
	_ = yt[(cols+1)*nmDWChunk-1]
	for i := 0; i < len(runs); {
		key, blocks := runs[i], int(runs[i+1])
		i += 2
		for range blocks {
			for e, j := range runs[i : i+4] {
				y := yt[int(j)*nmDWChunk : int(j)*nmDWChunk+nmDWChunk]
				for r := range 4 {
					row := int(key>>(4*r)) & 15
					x := xt[row*nmDWChunk : row*nmDWChunk+nmDWChunk]
					var s float32
					for l := range x {
						s += x[l] * y[l]
					}
					if !first {
						s += p[4*e+r]
					}
					switch {
					case dst == nil:
						p[4*e+r] = s
					case dst[4*e+r] >= 0:
						dw[dst[4*e+r]] = s
					}
				}
			}
			i += 4
			p = p[16:]
			if dst != nil {
				dst = dst[16:]
			}
		}
	}
}
