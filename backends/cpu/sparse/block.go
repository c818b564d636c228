package sparse

import "github.com/expc-dev/expc/backends/cpu/pool"

// Block is the block-sparse kernel: W is cut into 32x32 tiles and only the
// tiles that hold a kept weight are multiplied, with the register-blocked
// micro-kernel of the dense GEMM (12 x 32 tiles of C on AVX-512) running
// over a list of 32-deep segments instead of one contiguous k range. Any
// mask works; the work falls with the fraction of occupied tiles, so block
// patterns whose blocks are 32x32 or larger (or aligned multiples) pay.
//
//	forward  C = A·(W⊙M):  A in 12-row panels, each 32-column panel of W⊙M
//	         packs its occupied 32x32 tiles one after the other
//	input    C = A·(W⊙M)ᵀ: the same over the transposed tiles
//	weight   D = (Xᵀ·dY)⊙M: only the 12 x 32 tiles of D that hold a kept
//	         weight are computed (over the whole batch), then masked
type Block struct {
	s       Shape
	dir     Dir
	mr, nr  int
	mask    []float32
	density float64

	// forward and input: C (m x n) = A (m x k) · op(W') (k x n)
	m, n, k int
	kPad    int       // k rounded up to whole tiles
	panels  [][]int32 // per 32-column panel of op(W'): the first k of each occupied 32-row tile
	tiles   int       // occupied tiles in all
	bOff    []int32   // per column panel: offset (in tiles) of its packed tiles

	// weight: which mr x nr tiles of D hold a kept weight
	dKept []bool

	apad        []float32   // A padded to kPad columns (only when k is not a multiple of 32)
	xstrips     []float32   // weight: X packed in strips of mr columns (batch x mr each)
	ypanel      [][]float32 // weight, per worker: the current dY column panel (batch x nr)
	ypanelJ     []int       // weight, per worker: which panel ypanel holds (-1: none)
	bpack       []float32   // the occupied tiles of op(W⊙M), packed
	tile        [][]float32 // per worker: mr x nr scratch for edge tiles
	arows       [][]float32 // per worker: mr x kPad scratch rows for the last row panel
	a, w, dy, c []float32
	lda         int

	tPackB, tMul, tStrips rangeTask
	fPackB, fMul, fStrips func(w, lo, hi int)
}

const tileK = 32 // rows of W per occupied tile (a segment of the k loop)

// NewBlock returns the block-sparse kernel for one product.
func NewBlock(s Shape, dir Dir) *Block {
	b := &Block{s: s, dir: dir, mr: microMR, nr: microNR}
	switch dir {
	case Forward:
		b.m, b.n, b.k = s.Batch, s.Cols, s.Rows
	case Input:
		b.m, b.n, b.k = s.Batch, s.Rows, s.Cols
	case Weight:
		b.m, b.n, b.k = s.Rows, s.Cols, s.Batch
	}
	b.kPad = ceilDiv(b.k, tileK) * tileK
	b.fPackB, b.fMul, b.fStrips = b.packBChunk, b.mulChunk, b.stripsChunk
	return b
}

func (b *Block) Density() float64 { return b.density }

// kept reports whether the mask keeps any weight of op(W') in rows
// [k0, k0+kh) x columns [j0, j0+jw) (of the product's orientation).
func (b *Block) kept(k0, kh, j0, jw int) bool {
	cols := b.s.Cols
	for k := k0; k < min(k0+kh, b.k); k++ {
		for j := j0; j < min(j0+jw, b.n); j++ {
			r, c := k, j // forward: op(W') = W'
			if b.dir == Input {
				r, c = j, k
			}
			if b.mask[r*cols+c] != 0 {
				return true
			}
		}
	}
	return false
}

func (b *Block) Build(mask []float32) {
	b.mask = mask
	nnz := 0
	for _, v := range mask[:b.s.Rows*b.s.Cols] {
		if v != 0 {
			nnz++
		}
	}
	b.density = float64(nnz) / float64(max(1, b.s.Rows*b.s.Cols))
	nr := b.nr
	if b.dir == Weight {
		qs, js := ceilDiv(b.s.Rows, b.mr), ceilDiv(b.s.Cols, nr)
		if cap(b.dKept) < qs*js {
			b.dKept = make([]bool, qs*js)
		}
		b.dKept = b.dKept[:qs*js]
		for q := range qs {
			for j := range js {
				b.dKept[q*js+j] = b.keptW(q*b.mr, b.mr, j*nr, nr)
			}
		}
		return
	}
	np := ceilDiv(b.n, nr)
	for len(b.panels) < np {
		b.panels = append(b.panels, nil)
	}
	b.panels = b.panels[:np]
	b.bOff = grow(b.bOff, np+1)
	b.tiles = 0
	for j := range np {
		b.panels[j] = b.panels[j][:0]
		b.bOff[j] = int32(b.tiles)
		for kt := 0; kt < b.kPad; kt += tileK {
			if b.kept(kt, tileK, j*nr, nr) {
				b.panels[j] = append(b.panels[j], int32(kt))
				b.tiles++
			}
		}
	}
	b.bOff[np] = int32(b.tiles)
}

// keptW reports whether the mask keeps a weight of W in rows [r0, r0+rh) x
// columns [c0, c0+cw).
func (b *Block) keptW(r0, rh, c0, cw int) bool {
	cols := b.s.Cols
	for r := r0; r < min(r0+rh, b.s.Rows); r++ {
		for _, v := range b.mask[r*cols+c0 : r*cols+min(c0+cw, cols)] {
			if v != 0 {
				return true
			}
		}
	}
	return false
}

// packBChunk packs column panels [lo, hi): the occupied tiles of op(W⊙M),
// each tileK x nr, row-major.
func (b *Block) packBChunk(_, lo, hi int) {
	nr, cols := b.nr, b.s.Cols
	for j := lo; j < hi; j++ {
		bp := b.bpack[int(b.bOff[j])*tileK*nr:]
		n0, nn := j*nr, min(nr, b.n-j*nr)
		for t, kt := range b.panels[j] {
			d := bp[t*tileK*nr : (t+1)*tileK*nr]
			clear(d)
			for p := range min(tileK, b.k-int(kt)) {
				if b.dir != Forward {
					break
				}
				k := int(kt) + p // W[k, n0:n0+nn], contiguous
				row := d[p*nr : p*nr+nn]
				w, m := b.w[k*cols+n0:k*cols+n0+nn], b.mask[k*cols+n0:k*cols+n0+nn]
				for c := range row {
					row[c] = w[c] * m[c]
				}
			}
			if b.dir == Input { // op(W) = Wᵀ: tile[p][c] = W[n0+c, kt+p], read along W's rows
				kn := min(tileK, b.k-int(kt))
				for c := range nn {
					i := (n0+c)*cols + int(kt)
					w, m := b.w[i:i+kn], b.mask[i:i+kn]
					for p := range w {
						d[p*nr+c] = w[p] * m[p]
					}
				}
			}
		}
	}
}

// stripsChunk packs the full strips [lo, hi) of mr columns of X (the A
// operand of the weight gradient): strip q is batch x mr at q·batch·mr.
func (b *Block) stripsChunk(_, lo, hi int) {
	rows, batch, mr := b.s.Rows, b.s.Batch, b.mr
	for q := lo; q < hi; q++ {
		if (q+1)*mr > rows {
			continue // the edge strip is read in place
		}
		d := b.xstrips[q*batch*mr : (q+1)*batch*mr]
		for k := range batch {
			src := b.a[k*rows+q*microMR : k*rows+q*microMR+microMR]
			dst := d[k*microMR : k*microMR+microMR]
			dst[0], dst[1], dst[2], dst[3] = src[0], src[1], src[2], src[3]
			dst[4], dst[5], dst[6], dst[7] = src[4], src[5], src[6], src[7]
			dst[8], dst[9], dst[10], dst[11] = src[8], src[9], src[10], src[11]
		}
	}
}

// mulChunk computes work items [lo, hi) of C: item t is row panel t / np,
// column panel t % np (forward, input), or tile t of D (weight).
func (b *Block) mulChunk(w, lo, hi int) {
	mr, nr := b.mr, b.nr
	tile := b.tile[w]
	if b.dir == Weight {
		rows, cols, batch := b.s.Rows, b.s.Cols, b.s.Batch
		qs, js := ceilDiv(rows, mr), ceilDiv(cols, nr)
		for t := lo; t < hi; t++ {
			// column panel major: dY's panel stays in cache across row panels
			j, q := t/qs, t%qs
			t := q*js + j
			r0, c0 := q*mr, j*nr
			rn, cn := min(mr, rows-r0), min(nr, cols-c0)
			if !b.dKept[t] { // t: the tile's index in dKept, row panel major
				for r := range rn {
					clear(b.c[(r0+r)*cols+c0 : (r0+r)*cols+c0+cn])
				}
				continue
			}
			if rn == mr && cn == nr {
				// Packed operands stream contiguously: no TLB walk per step.
				if b.ypanelJ[w] != j {
					yp := b.ypanel[w]
					for k := range batch {
						*(*[microNR]float32)(yp[k*microNR:]) = *(*[microNR]float32)(b.dy[k*cols+c0:])
					}
					b.ypanelJ[w] = j
				}
				kernT(batch, b.xstrips[q*batch*mr:], mr, b.ypanel[w], nr, tile, nr)
			} else {
				kernTGo(batch, b.a[r0:], rows, rn, b.dy[c0:], cols, cn, tile, nr)
			}
			for r := range rn {
				d := b.c[(r0+r)*cols+c0 : (r0+r)*cols+c0+cn]
				m := b.mask[(r0+r)*cols+c0:]
				tr := tile[r*nr:]
				for c := range d {
					d[c] = tr[c] * m[c]
				}
			}
		}
		return
	}
	np := ceilDiv(b.n, nr)
	for t := lo; t < hi; t++ {
		q, j := t/np, t%np
		r0, c0 := q*mr, j*nr
		rows, cn := min(mr, b.m-r0), min(nr, b.n-c0)
		segs := b.panels[j]
		bp := b.bpack[int(b.bOff[j])*tileK*nr:]
		if len(segs) == 0 {
			for r := range rows {
				clear(b.c[(r0+r)*b.n+c0 : (r0+r)*b.n+c0+cn])
			}
			continue
		}
		a, lda := b.a[r0*b.lda:], b.lda
		if rows < mr { // the last row panel: copy its rows, zero the rest
			ar := b.arows[w][:mr*b.kPad]
			clear(ar)
			for r := range rows {
				copy(ar[r*b.kPad:], b.a[(r0+r)*b.lda:(r0+r)*b.lda+b.k])
			}
			a, lda = ar, b.kPad
		}
		if rows == mr && cn == nr {
			kernRows(len(segs), segs, a, lda, bp, b.c[r0*b.n+c0:], b.n)
			continue
		}
		kernRows(len(segs), segs, a, lda, bp, tile, nr)
		for r := range rows {
			copy(b.c[(r0+r)*b.n+c0:(r0+r)*b.n+c0+cn], tile[r*nr:r*nr+cn])
		}
	}
}

func (b *Block) Run(p *pool.Pool, a, w, dy, c []float32, ep *Epilogue) {
	mr, nr := b.mr, b.nr
	workers := 1
	if p != nil {
		workers = p.Workers()
	}
	for len(b.tile) < workers {
		b.tile = append(b.tile, make([]float32, mr*nr))
		b.arows = append(b.arows, make([]float32, mr*b.kPad))
	}
	b.a, b.w, b.dy, b.c = a, w, dy, c
	if b.dir == Weight {
		qs := ceilDiv(b.s.Rows, mr)
		if len(b.xstrips) < qs*b.s.Batch*mr {
			b.xstrips = make([]float32, qs*b.s.Batch*mr)
		}
		for len(b.ypanel) < workers {
			b.ypanel = append(b.ypanel, make([]float32, b.s.Batch*nr))
			b.ypanelJ = append(b.ypanelJ, -1)
		}
		for i := range b.ypanelJ {
			b.ypanelJ[i] = -1
		}
		b.tStrips.run(p, qs, 8, b.fStrips)
		b.tMul.run(p, len(b.dKept), 4, b.fMul)
		return
	}
	b.lda = b.k
	if b.k != b.kPad { // segments read whole 32-column tiles of A: pad it
		if len(b.apad) < b.m*b.kPad {
			b.apad = make([]float32, b.m*b.kPad)
		}
		for r := range b.m {
			copy(b.apad[r*b.kPad:r*b.kPad+b.k], a[r*b.k:(r+1)*b.k])
		}
		b.a, b.lda = b.apad, b.kPad
	}
	np := ceilDiv(b.n, nr)
	if len(b.bpack) < max(1, b.tiles)*tileK*nr {
		b.bpack = make([]float32, max(1, b.tiles)*tileK*nr)
	}
	b.tPackB.run(p, np, 2, b.fPackB)
	b.tMul.run(p, ceilDiv(b.m, mr)*np, 4, b.fMul)
	if ep != nil && !ep.empty() {
		ep.apply(c, b.n, 0, b.m)
	}
}

// kernRowsGo is the portable kernRows: the mr x nr tile of C at c (rows ldc
// apart) = Σ over segments s of A[0:mr, k0[s]:k0[s]+tileK] (rows lda
// apart) · the s-th packed tileK x nr tile of b.
func kernRowsGo(nseg int, k0 []int32, a []float32, lda int, b, c []float32, ldc int) {
	const mr, nr = microMR, microNR
	var acc [mr * nr]float32
	for s := range nseg {
		bp := b[s*tileK*nr:]
		for p := range tileK {
			bv := bp[p*nr : p*nr+nr]
			for i := range mr {
				x := a[i*lda+int(k0[s])+p]
				row := acc[i*nr : i*nr+nr]
				for j, y := range bv {
					row[j] += x * y
				}
			}
		}
	}
	for i := range mr {
		copy(c[i*ldc:i*ldc+nr], acc[i*nr:i*nr+nr])
	}
}

// kernTGo computes the rn x cn corner of the mr x nr tile at c (rows ldc
// apart) = Σ_{p<n} a[p·lda : +rn]ᵀ · b[p·ldb : +cn] (the weight gradient's
// tile, A = X and B = dY read in place).
func kernTGo(n int, a []float32, lda, rn int, b []float32, ldb, cn int, c []float32, ldc int) {
	for i := range rn {
		row := c[i*ldc : i*ldc+cn]
		clear(row)
	}
	for p := range n {
		av := a[p*lda : p*lda+rn]
		bv := b[p*ldb : p*ldb+cn]
		for i, x := range av {
			row := c[i*ldc : i*ldc+cn]
			for j, y := range bv {
				row[j] += x * y
			}
		}
	}
}
