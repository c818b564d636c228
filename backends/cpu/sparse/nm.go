package sparse

import (
	"sync/atomic"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// NM is the compressed N:4 kernel: in every group of four rows of W (four
// input features) each column keeps exactly n weights, so a product does
// n/4 of the dense multiply-adds, with no index lists to chase:
//
//	forward  C[b, j] = Σ_g Σ_{s<n} X[b, 4g+idx(g,s,j)]·W[4g+idx(g,s,j), j]
//	         (8 x 32 tiles; sixteen values of X from the group on are loaded
//	         and a VPERMPS per slot picks each column's input)
//	input    C[b, k] = Σ_j dY[b, j]·W'[k, j]: for each group the columns j are
//	         sorted by which rows they keep (their class), so within a class
//	         the n rows updated are fixed: one load of a row of dYᵀ feeds n
//	         fused multiply-adds (64 batch lanes); the kept weights are packed
//	         each run into a stream in the entries' layout
//	weight   D at the kept slots only. 2:4: dot products over the batch,
//	         for a pair of groups the columns in blocks of four that keep
//	         the same four rows, no permutes (nmdwruns.go); 1:4:
//	         Σ_b perm(idx, X[b, 4g:4g+4])·dY[b, j], three groups x 32
//	         columns per tile, written as the tile's twelve dense rows of
//	         dW (zero where pruned)
//
// A mask that is not exactly n:4 (the all-zero state before the first mask
// update, or all ones after a switch to dense) runs on the general kernels
// (index lists, SDDMM), which take any mask, or dense-with-mask when it keeps
// more than half the weights.
type NM struct {
	s        Shape
	dir      Dir
	n        int
	ok       bool   // the built mask is exactly n:4 and a vector path exists
	fallback Kernel // for any other mask: general or dense
	general  Kernel // index lists / SDDMM
	dense    Kernel // dense-with-mask, made when first needed
	density  float64
	mask     []float32
	groups   int // rows / 4

	// forward: idx per (group, slot, column); per (column panel, group) two
	// index vectors (fidx, fixed until the mask changes: slot s's row in
	// bits 4s.., see nmNibble) and the n·2 weight vectors of the current
	// column block (bpack, packed each run)
	idx    []uint8
	panels int
	fidx   []uint32
	bpack  []float32

	// weight: per (strip, column panel) the 3·n·2 index vectors
	didx     []uint8
	xstrip   [][]float32 // per worker: the strip of X its tiles are on
	xstripQ  []int       // which strip that is (-1: none yet this call)
	ypanels  []float32   // dY in panels of 32 columns (batch x 32 each, zero-padded)
	dout     [][]float32
	dwGroups int // full strips of three groups

	// input: per (chunk, group, class) counts and the entries (columns,
	// bytes within the chunk)
	classes int
	chunks  int
	ccnt    []int32
	cstart  []int32 // per chunk: first entry
	cent    []uint8
	dix     []uint32    // per (chunk, group): its columns' index words (nmNibble)
	dpk     []float32   // per (chunk, group): its kept weights, packed each run
	ytc     [][]float32 // per worker: dYᵀ of one chunk of columns by 64 batch rows
	xacc    [][]float32 // per worker: rows x 64 accumulators

	// weight gradient by runs (2:4, nmdwruns.go): the runs of every pair of
	// groups, where each pair's runs and sums begin, the sums; Xᵀ and dYᵀ
	// in chunks of 128 batch rows
	wruns  []uint16
	wstart []int32
	wpoff  []int32
	wdst   []int32 // per sum: its offset in the pair's rows of dW (-1: padding)
	wsum   []float32
	// Per worker, one chunk's Xᵀ of the block of items it runs (16 rows
	// of W an item, 128 lanes) and dYᵀ (cols+1 rows of 128); when the
	// workers share them (more than nmDWPrivateWorkers), buffer 0, with
	// Xᵀ of all rows.
	wxt, wyt [][]float32
	wch      int                 // the chunk in the shared buffers (-1: each worker's own)
	tWTrans  rangeTask           // the shared transposes
	fWTrans  func(w, lo, hi int) // transposeChunk
	// With private buffers the workers claim blocks of items chunk by
	// chunk from the two ends (weightSide): per chunk the blocks claimed,
	// per block the chunks done.
	wclaim []atomic.Int32
	wdone  []atomic.Int32
	tWSide rangeTask
	fWSide func(w, lo, hi int) // weightSide

	tile, xrows [][]float32 // forward, per worker: an 8 x 32 tile, 8 padded rows of X
	a, w, dy, c []float32
	tMul        rangeTask
	tPanel      rangeTask
	tDXPack     rangeTask
	fMul        func(w, lo, hi int)
	fDXPack     func(w, lo, hi int)
	fPanel      func(w, lo, hi int)
	fwd         nmFwdJob // the forward's steps
}

const (
	nmRows       = 8   // forward tile rows
	nmColBlock   = 6   // forward: column panels per block (2:4, 1024 inputs: 384 KiB of packed weights, 192 KiB of indices)
	nmKBlock     = 256 // forward: groups per k block (1024 inputs: a panel of 8 rows of X is 32 KiB)
	nmChunk      = 128 // input gradient: columns of W per chunk (32 KiB of dYᵀ; entries are bytes; asm_gen.go's nmDX steps 128 columns of packed weights per group)
	nmOverRead   = 12  // forward: floats the kernel reads past a row's last group
	nmPackBlocks = 8   // weight gradient: row blocks of dY in the packing jobs
	nmDXBlocks   = 2   // input gradient: batch blocks that pass each chunk's packed weights together
)

// NewNM returns the n:4 kernel for one product (1 <= n <= 3).
func NewNM(s Shape, dir Dir, n int) *NM {
	k := &NM{s: s, dir: dir, n: n, groups: s.Rows / 4}
	switch dir {
	case Weight:
		k.general = NewSDDMM(s)
	default:
		k.general = NewLists(s, dir)
	}
	k.fallback = k.general
	k.classes = len(nmClassesOf(n))
	k.panels = ceilDiv(s.Cols, 32)
	k.chunks = ceilDiv(s.Cols, nmChunk)
	k.dwGroups = ceilDiv(s.Rows/4, 3) * 3 // strips of three groups, the last padded with zeros
	k.fMul, k.fPanel, k.fDXPack = k.mulChunk, k.panelChunk, k.packDXChunk
	k.fWTrans = k.transposeChunk
	k.fWSide = k.weightSide
	k.fwd.k = k
	return k
}

// nmClassesOf lists the kept-row sets of an n:4 group in class order (the
// order nmDX's generated code expects).
func nmClassesOf(n int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == n {
			out = append(out, append([]int(nil), cur...))
			return
		}
		for i := start; i < 4; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

func (k *NM) Density() float64 { return k.density }

func (k *NM) Build(mask []float32) {
	rows, cols := k.s.Rows, k.s.Cols
	k.mask = mask
	k.ok = nmVector && rows%4 == 0 && (k.dir != Weight || k.n == 1 || k.n == 2 && cols < 1<<16-1) // 2:4 weight runs hold columns (and the padding column) as uint16
	nnz := 0
	for _, v := range mask[:rows*cols] {
		if v != 0 {
			nnz++
		}
	}
	k.density = float64(nnz) / float64(max(1, rows*cols))
	// idx[g][s][j]: the s-th kept row of group g in column j.
	if cap(k.idx) < k.groups*k.n*cols {
		k.idx = make([]uint8, k.groups*k.n*cols)
	}
	k.idx = k.idx[:k.groups*k.n*cols]
	for g := 0; g < k.groups && k.ok; g++ {
		for j := range cols {
			s := 0
			for i := range 4 {
				if mask[(4*g+i)*cols+j] != 0 {
					if s == k.n {
						s++
						break
					}
					k.idx[(g*k.n+s)*cols+j] = uint8(i)
					s++
				}
			}
			if s != k.n {
				k.ok = false
			}
		}
	}
	if !k.ok {
		// Not n:4 (before the first mask, or after a switch to dense): the
		// index lists for sparse masks, dense-with-mask for dense ones.
		k.fallback = k.general
		if k.density > 0.5 {
			if k.dense == nil {
				k.dense = NewDense(k.s, k.dir)
			}
			k.fallback = k.dense
		}
		k.fallback.Build(mask)
		return
	}
	switch k.dir {
	case Forward:
		k.buildForward()
	case Weight:
		if k.n == 2 {
			k.buildWeightRuns()
		} else {
			k.buildWeight()
		}
	case Input:
		k.buildInput()
	}
}

// buildForward writes the index vectors of every (column panel, group):
// 32 lanes, each the column's index word (nmNibble).
func (k *NM) buildForward() {
	k.fidx = growU(k.fidx, k.panels*k.groups*32)
	for jp := range k.panels {
		for g := range k.groups {
			d := k.fidx[(jp*k.groups+g)*32:]
			for l := range 32 {
				d[l] = k.nibbles(g, jp*32+l)
			}
		}
	}
}

// nibbles is the index word of column j in group g: its s-th kept row in
// bits 4s.. (0 past the last column).
func (k *NM) nibbles(g, j int) uint32 {
	cols := k.s.Cols
	if j >= cols {
		return 0
	}
	var v uint32
	for s := range k.n {
		v |= uint32(k.idx[(g*k.n+s)*cols+j]) << (4 * s)
	}
	return v
}

// nmNibble is slot s's row (0..3) in an index word whose bits 4s.. hold
// the s-th kept row of a column: the forward kernel's VPERMPS reads only a
// lane's low four bits, so a shift gives each slot its indices, and one
// vector serves all slots.
func nmNibble(v uint32, s int) int { return int(v>>(4*s)) & 15 }

func growU(s []uint32, n int) []uint32 {
	if cap(s) < n {
		return make([]uint32, n)
	}
	return s[:n]
}

func (k *NM) buildWeight() {
	cols, n := k.s.Cols, k.n
	strips := k.dwGroups / 3
	per := 3 * n * 32
	if len(k.didx) < strips*k.panels*per {
		k.didx = make([]uint8, strips*k.panels*per)
	}
	for q := range strips {
		for jp := range k.panels {
			d := k.didx[(q*k.panels+jp)*per:]
			for g := range 3 {
				for s := range n {
					for l := range 32 {
						j := jp*32 + l
						var i uint8
						if j < cols && 3*q+g < k.groups {
							i = k.idx[((3*q+g)*n+s)*cols+j]
						}
						// the kernel picks from the strip's twelve columns
						d[(g*n+s)*32+l] = uint8(4*g) + i
					}
				}
			}
		}
	}
}

func (k *NM) buildInput() {
	cols, n, nc := k.s.Cols, k.n, k.classes
	classOf := map[int]int{}
	for c, set := range nmClassesOf(n) {
		key := 0
		for _, r := range set {
			key |= 1 << r
		}
		classOf[key] = c
	}
	k.ccnt = grow(k.ccnt, k.chunks*k.groups*nc)
	clear(k.ccnt)
	cls := make([]uint8, k.groups*cols) // build time only
	for g := range k.groups {
		for j := range cols {
			key := 0
			for s := range n {
				key |= 1 << k.idx[(g*n+s)*cols+j]
			}
			c := classOf[key]
			cls[g*cols+j] = uint8(c)
			k.ccnt[((j/nmChunk)*k.groups+g)*nc+c]++
		}
	}
	first := make([]int32, len(k.ccnt))
	var sum int32
	k.cstart = grow(k.cstart, k.chunks+1)
	for i, v := range k.ccnt {
		if i%(k.groups*nc) == 0 {
			k.cstart[i/(k.groups*nc)] = sum
		}
		first[i] = sum
		sum += v
	}
	k.cstart[k.chunks] = sum
	if cap(k.cent) < int(sum) {
		k.cent = make([]uint8, sum)
	}
	k.cent = k.cent[:sum]
	for g := range k.groups {
		for j := range cols {
			slot := ((j/nmChunk)*k.groups+g)*nc + int(cls[g*cols+j])
			k.cent[first[slot]] = uint8(j % nmChunk) // within the chunk
			first[slot]++
		}
	}
	// The index words the packing reads: per (chunk, group), column by
	// column (four panels of 32).
	k.dix = growU(k.dix, k.chunks*k.groups*nmChunk)
	for ch := range k.chunks {
		for g := range k.groups {
			d := k.dix[(ch*k.groups+g)*nmChunk:]
			for jc := range nmChunk {
				d[jc] = k.nibbles(g, ch*nmChunk+jc)
			}
		}
	}
}

// nmDXGroup is the floats of one group's packed weights in a chunk of the
// input gradient: four panels of 32 columns, n slots each.
func nmDXGroup(n int) int { return nmChunk * n }

// nmDXOffset is where column jc of a chunk sits in its group's packed
// weights (slot 0; slot s is 32s further).
func nmDXOffset(n, jc int) int { return jc/32*32*n + jc%32 }

// packDXChunk packs the kept weights of (chunk, group) items [lo, hi) for
// the input gradient: each panel's lanes take the rows their indices name.
func (k *NM) packDXChunk(_, lo, hi int) {
	cols, n, gs := k.s.Cols, k.n, nmDXGroup(k.n)
	per := 32 * n
	for it := lo; it < hi; it++ {
		ch, g := it/k.groups, it%k.groups
		c0 := ch * nmChunk
		rows := k.w[4*g*cols : (4*g+4)*cols]
		ip, wp := k.dix[it*nmChunk:(it+1)*nmChunk], k.dpk[it*gs:(it+1)*gs]
		full := max(0, min(nmChunk, cols-c0)/32) // panels with 32 columns
		nmPack(n, full, rows[c0:], cols, ip, 32, wp, per)
		for jc := 32 * full; jc < nmChunk; jc++ { // the last panel: zero past the last column
			for s := range n {
				o := nmDXOffset(n, jc) + 32*s
				wp[o] = 0
				if j := c0 + jc; j < cols {
					wp[o] = rows[nmNibble(ip[jc], s)*cols+j]
				}
			}
		}
	}
}

func (k *NM) Run(p *pool.Pool, a, w, dy, c []float32, ep *Epilogue) {
	if !k.ok {
		k.fallback.Run(p, a, w, dy, c, ep)
		return
	}
	workers := 1
	if p != nil {
		workers = p.Workers()
	}
	k.a, k.w, k.dy, k.c = a, w, dy, c
	switch k.dir {
	case Forward:
		for len(k.tile) < workers {
			k.tile = append(k.tile, make([]float32, nmRows*32))
			k.xrows = append(k.xrows, make([]float32, nmRows*k.s.Rows+nmOverRead))
		}
		// Column blocks of nmColBlock panels (384 KiB of packed weights at
		// 1024 inputs and 2:4) are packed just before every row panel of X
		// passes them, so they are still in L2: packing all of W first
		// wrote 2 MiB that the other products' data then pushed out.
		k.bpack = growF(k.bpack, nmFwdBuffer*k.fwdBlock())
		k.fwd.run(p, workers)
		if ep != nil && !ep.empty() {
			ep.apply(c, k.s.Cols, 0, k.s.Batch)
		}
	case Weight:
		if k.n == 2 {
			k.runWeightRuns(p, workers)
			return
		}
		strips := k.dwGroups / 3
		if len(k.ypanels) < k.panels*k.s.Batch*32 {
			k.ypanels = make([]float32, k.panels*k.s.Batch*32)
		}
		for len(k.dout) < workers {
			k.dout = append(k.dout, make([]float32, 12*32))
			k.xstrip = append(k.xstrip, make([]float32, k.s.Batch*12+4)) // the kernel reads 4 past the end
			k.xstripQ = append(k.xstripQ, -1)
		}
		for i := range k.xstripQ {
			k.xstripQ[i] = -1
		}
		k.tPanel.run(p, nmPackBlocks, 1, k.fPanel)
		k.tMul.run(p, k.panels*strips, k.panels, k.fMul) // whole strips: each is packed once
	case Input:
		blocks := ceilDiv(k.s.Batch, lanes)
		for len(k.xacc) < workers {
			k.xacc = append(k.xacc, make([]float32, nmDXBlocks*k.s.Rows*lanes))
			k.ytc = append(k.ytc, make([]float32, nmChunk*lanes))
		}
		k.dpk = growF(k.dpk, k.chunks*k.groups*nmDXGroup(k.n))
		k.tDXPack.run(p, k.chunks*k.groups, 16, k.fDXPack)
		k.tMul.run(p, blocks, nmDXBlocks, k.fMul)
		if ep != nil && !ep.empty() {
			ep.apply(c, k.s.Rows, 0, k.s.Batch)
		}
	}
}

// fwdBlock is the size of one packed column block of the forward.
func (k *NM) fwdBlock() int { return nmColBlock * k.groups * 32 * k.n }

// packChunk packs the weights of column block b for groups [lo, hi) into
// its buffer: group g reads its four rows of W left to right, and each
// lane takes the row its index names.
func (k *NM) packChunk(b, lo, hi int) {
	cols, n := k.s.Cols, k.n
	per := 32 * n
	jb, jb1 := b*nmColBlock, min((b+1)*nmColBlock, k.panels)
	bpack := k.bpack[b%nmFwdBuffer*k.fwdBlock():]
	full := min(jb1, cols/32) // panels of the block with 32 columns
	for g := lo; g < hi; g++ {
		rows := k.w[4*g*cols : (4*g+4)*cols]
		if full > jb {
			nmPack(n, full-jb, rows[32*jb:], cols, k.fidx[(jb*k.groups+g)*32:], k.groups*32, bpack[g*per:], k.groups*per)
		}
		for jp := max(full, jb); jp < jb1; jp++ { // the last panel: lanes past the last column stay zero
			bp := bpack[((jp-jb)*k.groups+g)*per:]
			for s := range n {
				ix := k.idx[(g*n+s)*cols : (g*n+s+1)*cols]
				for l := range 32 {
					bp[32*s+l] = 0
					if j := jp*32 + l; j < cols {
						bp[32*s+l] = rows[int(ix[j])*cols+j]
					}
				}
			}
		}
	}
}

// nmPackGo is the portable nmPack: for npanels full panels of 32 columns
// of the group's four rows w (ldw apart), the n weight vectors of each
// panel (wp, wpStride floats apart) take the rows the panel's index words
// (ip, ipStride apart) name.
func nmPackGo(n, npanels int, w []float32, ldw int, ip []uint32, ipStride int, wp []float32, wpStride int) {
	for jp := range npanels {
		for s := range n {
			for l := range 32 {
				i := nmNibble(ip[jp*ipStride+l], s)
				wp[jp*wpStride+32*s+l] = w[i*ldw+32*jp+l]
			}
		}
	}
}

// mulChunk: weight tiles or items, or input batch blocks [lo, hi).
func (k *NM) mulChunk(w, lo, hi int) {
	switch k.dir {
	case Weight:
		if k.n == 2 {
			k.weightItems(w, lo, hi)
			return
		}
		k.weightTiles(w, lo, hi)
	case Input:
		k.inputBlocks(w, lo, hi)
	}
}

// forwardRows computes row panels [lo, hi) of C over column block b,
// nmKBlock groups at a time (a panel's eight rows of X, 32 KiB at 1024
// inputs, stay in L1 while the block's column panels pass).
func (k *NM) forwardRows(w, b, lo, hi int) {
	rows, cols, ldx := k.s.Batch, k.s.Cols, k.s.Rows
	n, per := k.n, 32*k.n
	jb, jb1 := b*nmColBlock, min((b+1)*nmColBlock, k.panels)
	bpack := k.bpack[b%nmFwdBuffer*k.fwdBlock():]
	tile := k.tile[w]
	for q := lo; q < hi; q++ {
		r0 := q * nmRows
		rn := min(nmRows, rows-r0)
		x := k.a[r0*ldx:]
		// The last row panel when short, or when the kernel's reads past
		// the last group would leave a: its rows, then zeros.
		if rn < nmRows || len(x) < (nmRows-1)*ldx+4*k.groups+nmOverRead {
			xs := k.xrows[w]
			clear(xs)
			for r := range rn {
				copy(xs[r*ldx:(r+1)*ldx], k.a[(r0+r)*ldx:(r0+r+1)*ldx])
			}
			x = xs
		}
		for g0 := 0; g0 < k.groups; g0 += nmKBlock {
			g1 := min(g0+nmKBlock, k.groups)
			accumulate := 0
			if g0 > 0 {
				accumulate = 1
			}
			for jp := jb; jp < jb1; jp++ {
				j0 := jp * 32
				cn := min(32, cols-j0)
				wp := bpack[((jp-jb)*k.groups+g0)*per:]
				ip := k.fidx[(jp*k.groups+g0)*32:]
				if rn == nmRows && cn == 32 {
					nmFwd(n, g1-g0, x[4*g0:], ldx, wp, ip, k.c[r0*cols+j0:], cols, accumulate)
					continue
				}
				nmFwd(n, g1-g0, x[4*g0:], ldx, wp, ip, tile, 32, 0)
				for r := range rn {
					dst := k.c[(r0+r)*cols+j0 : (r0+r)*cols+j0+cn]
					for c := range dst {
						if accumulate == 0 {
							dst[c] = tile[r*32+c]
						} else {
							dst[c] += tile[r*32+c]
						}
					}
				}
			}
		}
	}
}

// panelChunk packs row blocks [lo, hi) of dY (nmPackBlocks in all) into
// the panels of 32 columns, zero past the last column; each row is read
// once, left to right.
func (k *NM) panelChunk(_, lo, hi int) {
	cols, batch := k.s.Cols, k.s.Batch
	per := ceilDiv(batch, nmPackBlocks)
	for b := lo * per; b < min(hi*per, batch); b++ {
		dy := k.dy[b*cols : (b+1)*cols]
		jp := 0
		for ; (jp+1)*32 <= cols; jp++ {
			*(*[32]float32)(k.ypanels[(jp*batch+b)*32:]) = *(*[32]float32)(dy[jp*32:])
		}
		if jp < k.panels {
			d := k.ypanels[(jp*batch+b)*32 : (jp*batch+b)*32+32]
			w := copy(d, dy[jp*32:])
			clear(d[w:])
		}
	}
}

// packStrip copies strip q of X (twelve columns, three groups; zero past
// W's rows) into worker w's buffer, once per strip: the strip is then read
// from L1 by every panel's tile.
func (k *NM) packStrip(w, q int) []float32 {
	d := k.xstrip[w]
	if k.xstripQ[w] == q {
		return d
	}
	k.xstripQ[w] = q
	rows := k.s.Rows
	if (q+1)*12 <= rows {
		for b := range k.s.Batch {
			*(*[12]float32)(d[b*12:]) = *(*[12]float32)(k.a[b*rows+q*12:])
		}
		return d
	}
	for b := range k.s.Batch {
		n := copy(d[b*12:b*12+12], k.a[b*rows+q*12:b*rows+rows])
		clear(d[b*12+n : b*12+12])
	}
	return d
}

// weightTiles computes tiles [lo, hi) of the weight gradient: tile t is
// strip t / panels, column panel t % panels. Strip by strip, a worker keeps
// one strip of X (48 KiB at 1024 rows) in L1 while dY's panels stream
// past; panel by panel every strip streamed instead, and the second core
// added only 1.5x (now 1.95x). Full tiles write dW's rows directly, a tile
// past the last column or group through a scratch tile.
func (k *NM) weightTiles(w, lo, hi int) {
	cols, batch, n := k.s.Cols, k.s.Batch, k.n
	for t := lo; t < hi; t++ {
		jp, q := t%k.panels, t/k.panels
		j0 := jp * 32
		cn := min(32, cols-j0)
		yp := k.ypanels[jp*batch*32:]
		x := k.packStrip(w, q)
		idx := k.didx[(q*k.panels+jp)*3*n*32:]
		rows := min(12, k.s.Rows-12*q)
		if cn == 32 && rows == 12 {
			nmDW(n, batch, x, yp, 32, idx, k.c[12*q*cols+j0:], cols)
			continue
		}
		out := k.dout[w]
		nmDW(n, batch, x, yp, 32, idx, out, 32)
		for r := range rows {
			copy(k.c[(12*q+r)*cols+j0:(12*q+r)*cols+j0+cn], out[r*32:r*32+cn])
		}
	}
}

// inputBlocks computes batch blocks [lo, hi) of the input gradient. Each
// chunk of dY's columns is transposed just before its pass, into a 32 KiB
// per-worker buffer, so no 4 MiB copy of dYᵀ is kept (the speed is the
// same either way on the reference machine); sixteen rows of dY at a time
// (transposeIntoCache), since the buffer stays in L1.
func (k *NM) inputBlocks(w, lo, hi int) {
	rows, cols, nc := k.s.Rows, k.s.Cols, k.classes
	yt := k.ytc[w]
	for t0 := lo; t0 < hi; t0 += nmDXBlocks {
		t1 := min(t0+nmDXBlocks, hi)
		for ch := range k.chunks {
			c0 := ch * nmChunk
			cnt := k.ccnt[ch*k.groups*nc : (ch+1)*k.groups*nc]
			ent := k.cent[k.cstart[ch]:k.cstart[ch+1]]
			gs := k.groups * nmDXGroup(k.n)
			for t := t0; t < t1; t++ {
				b0 := t * lanes
				nb := min(lanes, k.s.Batch-b0)
				if nb < lanes {
					clear(yt)
				}
				transposeIntoCache(yt, lanes, k.a[b0*cols+c0:], cols, 0, nb, min(nmChunk, cols-c0)) // a is dY here
				nmDX(k.n, k.groups, cnt, ent, k.dpk[ch*gs:(ch+1)*gs], yt, k.xacc[w][(t-t0)*rows*lanes:(t-t0+1)*rows*lanes], ch == 0)
			}
		}
		for t := t0; t < t1; t++ {
			b0 := t * lanes
			nb := min(lanes, k.s.Batch-b0)
			transpose(k.c[b0*rows:], rows, k.xacc[w][(t-t0)*rows*lanes:], lanes, 0, rows, nb)
		}
	}
}

// nmFwdGo is the portable nmFwd for a tile of rn <= 8 rows: out (rows ldo
// apart, 32 wide) = Σ over groups of the kept slots (wp, ip: the packed
// weights and indices at the first group; x: row 0 at the group's first
// input).
func nmFwdGo(n, ngroups int, x []float32, ldx, rn int, wp []float32, ip []uint32, out []float32, ldo int) {
	per := 32 * n
	for r := range rn {
		clear(out[r*ldo : r*ldo+32])
	}
	for g := range ngroups {
		for s := range n {
			for l := range 32 {
				wv := wp[g*per+32*s+l]
				i := nmNibble(ip[g*32+l], s)
				for r := range rn {
					out[r*ldo+l] += x[r*ldx+4*g+i] * wv
				}
			}
		}
	}
}

// nmDWGo is the portable nmDW: twelve dense rows of dW (ldo apart) for
// three groups by 32 columns, row 4g+i holding at lane l
// Σ_b x[b·12+4g+i]·y[b·ldy+l] where slot s of lane l keeps it
// (idx[(g·n+s)·32+l] = 4g+i), and zero where no slot does.
func nmDWGo(n, nb int, x, y []float32, ldy int, idx []uint8, out []float32, ldo int) {
	for r := range 12 {
		clear(out[r*ldo : r*ldo+32])
	}
	for g := range 3 {
		for s := range n {
			for l := range 32 {
				i := int(idx[(g*n+s)*32+l])
				var sum float32
				for b := range nb {
					sum += x[b*12+i] * y[b*ldy+l]
				}
				out[i*ldo+l] = sum
			}
		}
	}
}

// nmDXGo is the portable nmDX (see the generator in asm_gen.go).
func nmDXGo(n, ngroups int, cnt []int32, ent []uint8, wp, yt, acc []float32, first bool) {
	classes := nmClassesOf(n)
	if first {
		clear(acc[:ngroups*4*lanes])
	}
	e := 0
	for g := range ngroups {
		pw := wp[g*nmDXGroup(n):]
		for c, set := range classes {
			for range cnt[g*len(classes)+c] {
				j := int(ent[e])
				e++
				y := yt[j*lanes : j*lanes+lanes]
				for s, r := range set {
					v := pw[nmDXOffset(n, j)+32*s]
					a := acc[(4*g+r)*lanes : (4*g+r)*lanes+lanes]
					for l, x := range y {
						a[l] += v * x
					}
				}
			}
		}
	}
}
