package sparse

import (
	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Lists is the kernel for the forward and input products of unstructured
// and N:M masks: index lists of the kept weights per output column (CSR of
// op(W⊙M)ᵀ). A run gathers the kept weight values, transposes the dense
// operand A (B x P) into blocks of 64 batch rows (AT, P x 64 each), and
// computes each output column as a sum of rows of AT scaled by the kept
// weights (an SpMM):
//
//	C[b0:b0+64, j] = Σ_e val[e] · AT[p(e), 0:64]
//
// Output columns go in tiles of six and the reduction in chunks of 128
// rows of AT (32 KiB, which stays in L1 while the six columns use it); the
// entries of a tile are stored chunk by chunk, column by column. On AVX-512
// a tile's 6 x 64 sums are 24 vector registers and every kept weight costs
// four fused multiply-adds whose second operand is a load from AT.
type Lists struct {
	s       Shape
	dir     Dir
	j, p    int // outputs and reduction length
	tiles   int
	chunks  int
	cnt     []int32 // per tile, chunk, row: entries
	start   []int32 // per tile: first entry; len tiles+1
	off     []int32 // per entry: byte offset of its row in an AT block (p·64·4)
	src     []int32 // per entry: flat index of its weight in W
	val     []float32
	at      []float32 // AT in blocks of 64 batch rows: block t is P x 64 at t·P·64
	density float64

	// operands of the current call, and the chunk functions bound once
	a, w, c               []float32
	tGather, tTrans, tMul rangeTask
	fGather, fTrans, fMul func(w, lo, hi int)
	acc                   [][]float32 // per worker: a Cᵀ block, tiles·tileRows x 64
	split                 int         // parts the output columns of a batch block are cut into
}

const (
	lanes    = 64  // batch rows one SpMM pass computes
	tileRows = 6   // output columns per tile
	chunkP   = 128 // reduction rows per chunk
)

// NewLists returns the index-list kernel for the forward or input product.
func NewLists(s Shape, dir Dir) *Lists {
	l := &Lists{s: s, dir: dir, j: s.Cols, p: s.Rows}
	if dir == Input {
		l.j, l.p = s.Rows, s.Cols
	}
	l.tiles, l.chunks = ceilDiv(l.j, tileRows), ceilDiv(l.p, chunkP)
	l.fGather, l.fTrans, l.fMul = l.gatherChunk, l.transChunk, l.mulChunk
	return l
}

func (l *Lists) Density() float64 { return l.density }

// Build indexes the kept weights by tile, chunk and output column.
func (l *Lists) Build(mask []float32) {
	rows, cols := l.s.Rows, l.s.Cols
	l.cnt = grow(l.cnt, l.tiles*l.chunks*tileRows)
	clear(l.cnt)
	// slot of output j, reduction p in cnt
	slot := func(j, p int) int { return (j/tileRows*l.chunks+p/chunkP)*tileRows + j%tileRows }
	nnz := 0
	for i, v := range mask[:rows*cols] {
		if v != 0 {
			j, p := i%cols, i/cols
			if l.dir == Input {
				j, p = p, j
			}
			l.cnt[slot(j, p)]++
			nnz++
		}
	}
	// cnt is in entry order: the running sum gives each slot's first entry.
	first := make([]int32, len(l.cnt)) // build time only
	var sum int32
	l.start = grow(l.start, l.tiles+1)
	for i, n := range l.cnt {
		if i%(l.chunks*tileRows) == 0 {
			l.start[i/(l.chunks*tileRows)] = sum
		}
		first[i] = sum
		sum += n
	}
	l.start[l.tiles] = sum
	l.off, l.src, l.val = grow(l.off, nnz), grow(l.src, nnz), growF(l.val, nnz)
	// Visit kept weights in increasing p within each output so that every
	// list is in reduction order.
	visit := func(i int) {
		j, p := i%cols, i/cols
		if l.dir == Input {
			j, p = p, j
		}
		s := slot(j, p)
		e := first[s]
		first[s]++
		l.off[e], l.src[e] = int32(p*lanes*4), int32(i)
	}
	if l.dir == Forward { // p = row: row-major order is p-major
		for i, v := range mask[:rows*cols] {
			if v != 0 {
				visit(i)
			}
		}
	} else { // p = column: go column by column
		for c := range cols {
			for r := range rows {
				if mask[r*cols+c] != 0 {
					visit(r*cols + c)
				}
			}
		}
	}
	l.density = float64(nnz) / float64(max(1, rows*cols))
}

func grow(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

func growF(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func (l *Lists) gatherChunk(_, lo, hi int) {
	src, val, w := l.src[lo:hi], l.val[lo:hi], l.w
	for i, s := range src {
		val[i] = w[s]
	}
}

// transChunk transposes batch blocks [lo, hi) of A into AT.
func (l *Lists) transChunk(_, lo, hi int) {
	for t := lo; t < hi; t++ {
		b0 := t * lanes
		n := min(lanes, l.s.Batch-b0)
		transposeIntoCache(l.at[t*l.p*lanes:], lanes, l.a[b0*l.p:], l.p, 0, n, l.p)
	}
}

// mulChunk computes work items [lo, hi): item t is batch block t /
// l.split, output columns part t % l.split (whole tiles). Each tile's sums
// go to a Cᵀ block (columns x 64 lanes), transposed into C at the end.
func (l *Lists) mulChunk(w, lo, hi int) {
	ct := l.acc[w]
	b := l.s.Batch
	per := ceilDiv(l.tiles, l.split)
	for t := lo; t < hi; t++ {
		blk, part := t/l.split, t%l.split
		b0 := blk * lanes
		n := min(lanes, b-b0)
		t0, t1 := part*per, min((part+1)*per, l.tiles)
		if t0 >= t1 {
			continue
		}
		at := l.at[blk*l.p*lanes : (blk+1)*l.p*lanes]
		for tile := t0; tile < t1; tile++ {
			e0 := l.start[tile]
			cnt := l.cnt[tile*l.chunks*tileRows : (tile+1)*l.chunks*tileRows]
			spmmTile(l.chunks, cnt, l.off[e0:], l.val[e0:], at, ct[tile*tileRows*lanes:])
		}
		j0, j1 := t0*tileRows, min(t1*tileRows, l.j)
		transpose(l.c[b0*l.j+j0:], l.j, ct[j0*lanes:], lanes, 0, j1-j0, n)
	}
}

func (l *Lists) Run(p *pool.Pool, a, w, _, c []float32, ep *Epilogue) {
	b := l.s.Batch
	workers := 1
	if p != nil {
		workers = p.Workers()
	}
	for len(l.acc) < workers {
		l.acc = append(l.acc, make([]float32, l.tiles*tileRows*lanes))
	}
	blocks := ceilDiv(b, lanes)
	if len(l.at) < blocks*l.p*lanes {
		l.at = make([]float32, blocks*l.p*lanes)
	}
	l.a, l.w, l.c = a, w, c
	l.tGather.run(p, len(l.src), 64<<10, l.fGather)
	l.tTrans.run(p, blocks, 1, l.fTrans)
	l.split = max(1, ceilDiv(workers, blocks)) // enough items for every worker
	l.tMul.run(p, blocks*l.split, 1, l.fMul)
	if ep != nil && !ep.empty() {
		ep.apply(c, l.j, 0, b)
	}
}

// spmmTileGo is the portable spmmTile: for the tile's six output columns r,
// acc[r·64 : r·64+64] = Σ over chunks and the column's entries in each of
// val[e]·at[off[e]/4 : +64].
func spmmTileGo(chunks int, cnt, off []int32, val, at, acc []float32) {
	acc = acc[:tileRows*lanes]
	clear(acc)
	e := 0
	for c := range chunks {
		for r := range tileRows {
			sum := acc[r*lanes : r*lanes+lanes]
			for range cnt[c*tileRows+r] {
				v := val[e]
				row := at[off[e]/4 : off[e]/4+lanes]
				for i, x := range row {
					sum[i] += v * x
				}
				e++
			}
		}
	}
}
