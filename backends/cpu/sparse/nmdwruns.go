package sparse

import (
	"sync/atomic"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

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
// pairs pass; the workers transpose it and Xᵀ chunk by chunk
// (runWeightRuns).

const (
	nmDWChunk = 128 // batch rows per chunk (the kernel's eight vectors)
	nmDWBlock = 8   // items a worker claims at once with private buffers (128 columns of X)
)

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

// nmDWPrivateWorkers is how many workers at most transpose each chunk
// into buffers of their own, every worker all of dY. With two, that made
// the weight gradient 10-16% faster than the workers transposing a chunk
// together into one pair of buffers and then reading each other's halves
// (four calm alternating pairs at 14:45 UTC on the 2-core reference
// machine). With more workers each one's share of the product shrinks
// while its transposes of dY do not, so they share the buffers (not
// measured here: this machine has two cores).
const nmDWPrivateWorkers = 2

// runWeightRuns is the weight gradient's Run on the runs path, chunk by
// chunk of 128 batch rows. Up to nmDWPrivateWorkers, each worker
// transposes each chunk of dY into a buffer of its own and claims blocks
// of items, with their columns of X, from its end of the chunk
// (weightSide); beyond, all transpose a chunk into one pair of buffers
// first. Transposing all of X and dY once a call wrote 8 MiB that the
// kernel then read back from memory.
func (k *NM) runWeightRuns(p *pool.Pool, workers int) {
	rows, cols := k.s.Rows, k.s.Cols
	k.wsum = growF(k.wsum, int(k.wpoff[len(k.wpoff)-1]))
	items := k.witems()
	// dYᵀ has a row more, the zero padding column; Xᵀ is sized for a
	// block of items per worker, or for all rows in buffer 0 when shared.
	for len(k.wyt) < workers {
		k.wxt = append(k.wxt, nil)
		k.wyt = append(k.wyt, make([]float32, (cols+1)*nmDWChunk))
	}
	chunks := ceilDiv(k.s.Batch, nmDWChunk)
	if workers <= nmDWPrivateWorkers {
		k.wch = -1
		if len(k.wclaim) < chunks {
			k.wclaim = make([]atomic.Int32, chunks)
		}
		if blocks := ceilDiv(items, nmDWBlock); len(k.wdone) < blocks {
			k.wdone = make([]atomic.Int32, blocks)
		}
		for i := range k.wclaim {
			k.wclaim[i].Store(0)
		}
		for i := range k.wdone {
			k.wdone[i].Store(0)
		}
		k.tWSide.run(p, workers, 1, k.fWSide)
		return
	}
	k.wxt[0] = growF(k.wxt[0], 16*items*nmDWChunk)
	xt, yt := k.wxt[0], k.wyt[0]
	clear(xt[rows*nmDWChunk:]) // zero past the last input
	clear(yt[cols*nmDWChunk:])
	per := ceilDiv(items, workers)
	for ch := range chunks {
		k.wch = ch
		if k.s.Batch-ch*nmDWChunk < nmDWChunk { // the short last chunk: lanes past its rows stay zero
			clear(xt)
			clear(yt)
		}
		k.tWTrans.run(p, 2*ceilDiv(min(nmDWChunk, k.s.Batch-ch*nmDWChunk), 16), 1, k.fWTrans)
		k.tMul.run(p, items, per, k.fMul)
	}
}

// witems is the number of sixteen-row slices of W (two pairs each).
func (k *NM) witems() int { return ceilDiv(ceilDiv(k.groups, 2), 2) }

// transposeChunk writes units [lo, hi) of the current chunk's shared Xᵀ
// and dYᵀ: sixteen rows of the chunk each, of X, then of dY, read row by
// row (transposeIntoCache).
func (k *NM) transposeChunk(_, lo, hi int) {
	rows, cols := k.s.Rows, k.s.Cols
	b0 := k.wch * nmDWChunk
	nb := min(nmDWChunk, k.s.Batch-b0)
	slabs := ceilDiv(nb, 16)
	for u := lo; u < hi; u++ {
		if u < slabs {
			transposeIntoCache(k.wxt[0], nmDWChunk, k.a[b0*rows:], rows, 16*u, min(16*u+16, nb), rows)
			continue
		}
		r0 := 16 * (u - slabs)
		transposeIntoCache(k.wyt[0], nmDWChunk, k.dy[b0*cols:], cols, r0, min(r0+16, nb), cols)
	}
}

// weightItems runs items [lo, hi) over the current chunk of the shared
// buffers.
func (k *NM) weightItems(_, lo, hi int) {
	k.pairsOverChunk(lo, hi, k.wch, k.wxt[0][16*lo*nmDWChunk:], k.wyt[0])
}

// weightSide is one worker's part of the product with private buffers.
// Chunk by chunk it transposes dY, then claims blocks of nmDWBlock items
// from its side's end (side 0 the first, side 1 the last) until the
// chunk's blocks are all claimed, transposing each block's columns of X
// before running its pairs. A faster core so takes more blocks: with two
// fixed halves the faster worker waited for the slower, 2-10% of the
// product on the reference machine, and with another program busy a
// third of the time on one core the product took 6.1-7.0 ms against
// 4.8-5.2 now. A block's chunks run in order: a block claimed in the
// next chunk waits until its previous chunk is done. Who runs a pair
// changes nothing in its sums.
func (k *NM) weightSide(w, side, _ int) {
	rows, cols := k.s.Rows, k.s.Cols
	items := k.witems()
	blocks := int32(ceilDiv(items, nmDWBlock))
	k.wxt[w] = growF(k.wxt[w], 16*nmDWBlock*nmDWChunk)
	xt, yt := k.wxt[w], k.wyt[w]
	clear(yt[cols*nmDWChunk:])
	for ch := range ceilDiv(k.s.Batch, nmDWChunk) {
		if k.wclaim[ch].Load() >= blocks {
			continue
		}
		b0 := ch * nmDWChunk
		nb := min(nmDWChunk, k.s.Batch-b0)
		if nb < nmDWChunk { // the short last chunk: lanes past nb stay zero
			clear(yt)
		}
		transposeIntoCache(yt, nmDWChunk, k.dy[b0*cols:], cols, 0, nb, cols)
		for taken := int32(0); k.wclaim[ch].Add(1) <= blocks; taken++ {
			bi := taken
			if side == 1 {
				bi = blocks - 1 - taken
			}
			waitFor(&k.wdone[bi], int32(ch))
			lo := int(bi) * nmDWBlock
			hi := min(lo+nmDWBlock, items)
			r0, r1 := 16*lo, min(16*hi, rows)
			if nb < nmDWChunk || r1-r0 < 16*(hi-lo) { // zero lanes past nb, rows past W's last
				clear(xt[:16*(hi-lo)*nmDWChunk])
			}
			transposeIntoCache(xt, nmDWChunk, k.a[b0*rows+r0:], rows, 0, nb, r1-r0)
			k.pairsOverChunk(lo, hi, ch, xt, yt)
			k.wdone[bi].Store(int32(ch + 1))
		}
	}
}

// pairsOverChunk runs the pairs of items [lo, hi) over chunk ch, with xt
// Xᵀ from the first pair's rows on and yt the chunk's dYᵀ; in the last
// chunk the kernel writes the sums into the pair's rows of dW, cleared
// first for the pruned weights.
func (k *NM) pairsOverChunk(lo, hi, ch int, xt, yt []float32) {
	rows, cols := k.s.Rows, k.s.Cols
	last := ch == ceilDiv(k.s.Batch, nmDWChunk)-1
	q0 := 2 * lo
	for q := q0; q < min(2*hi, ceilDiv(k.groups, 2)); q++ {
		var dst []int32
		var dw []float32
		if last {
			dst, dw = k.wdst[k.wpoff[q]:k.wpoff[q+1]], k.c[8*q*cols:min(8*q+8, rows)*cols]
			clear(dw)
		}
		nmDWRuns(k.wruns[k.wstart[q]:k.wstart[q+1]], xt[8*(q-q0)*nmDWChunk:], yt, k.wsum[k.wpoff[q]:k.wpoff[q+1]], cols, ch == 0, dst, dw)
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
