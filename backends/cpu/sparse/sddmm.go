package sparse

import "github.com/expc-dev/expc/backends/cpu/pool"

// SDDMM is the weight-gradient kernel of unstructured and N:M masks: it
// computes D[k, j] = Σ_b X[b, k]·dY[b, j] only where the mask keeps W[k, j]
// (a sampled dense-dense product) and writes zeros elsewhere. X and dY are
// transposed first so that every kept entry is a dot product of two
// contiguous rows. Rows of D go in blocks of sddmmRows whose rows of Xᵀ
// stay in L2; within a block the kept entries are visited column by column,
// so each row of dYᵀ is read once per block and, on AVX-512, shared by the
// four dot products computed together.
type SDDMM struct {
	s        Shape
	ptr      []int32 // per row block: len Cols+1 offsets into row, ascending j
	row      []int32 // k of each entry, ascending within a (block, column)
	ld       int     // row stride of xt and dyt: the batch rounded up to 32 (zero padding)
	xt, dyt  []float32
	density  float64
	x, dy, d []float32

	tTx, tTdy, tRows rangeTask
	fTx, fTdy, fRows func(w, lo, hi int)
}

// NewSDDMM returns the sampled weight-gradient kernel.
func NewSDDMM(s Shape) *SDDMM {
	k := &SDDMM{s: s, ld: ceilDiv(s.Batch, 32) * 32}
	k.fTx, k.fTdy, k.fRows = k.txChunk, k.tdyChunk, k.rowsChunk
	return k
}

func (k *SDDMM) Density() float64 { return k.density }

// sddmmRows is the height of a row block (its rows of Xᵀ: 512 KiB at a
// batch of 1024).
const sddmmRows = 128

func (k *SDDMM) Build(mask []float32) {
	rows, cols := k.s.Rows, k.s.Cols
	nb := ceilDiv(rows, sddmmRows)
	k.ptr = grow(k.ptr, nb*(cols+1))
	nnz := 0
	for b := range nb {
		ptr := k.ptr[b*(cols+1) : (b+1)*(cols+1)]
		clear(ptr)
		for r := b * sddmmRows; r < min((b+1)*sddmmRows, rows); r++ {
			for j, v := range mask[r*cols : (r+1)*cols] {
				if v != 0 {
					ptr[j+1]++
					nnz++
				}
			}
		}
		for j := 1; j <= cols; j++ {
			ptr[j] += ptr[j-1]
		}
	}
	k.row = grow(k.row, nnz)
	base := int32(0)
	for b := range nb {
		ptr := k.ptr[b*(cols+1) : (b+1)*(cols+1)]
		next := append([]int32(nil), ptr[:cols]...) // build time only
		for r := b * sddmmRows; r < min((b+1)*sddmmRows, rows); r++ {
			for j, v := range mask[r*cols : (r+1)*cols] {
				if v != 0 {
					k.row[base+next[j]] = int32(r)
					next[j]++
				}
			}
		}
		base += ptr[cols]
		for j := range ptr {
			ptr[j] += base - ptr[cols] // make offsets global
		}
	}
	k.density = float64(nnz) / float64(max(1, rows*cols))
}

func (k *SDDMM) txChunk(_, lo, hi int) {
	transpose(k.xt, k.ld, k.x, k.s.Rows, lo, hi, k.s.Rows)
}

func (k *SDDMM) tdyChunk(_, lo, hi int) {
	transpose(k.dyt, k.ld, k.dy, k.s.Cols, lo, hi, k.s.Cols)
}

// rowsChunk computes row blocks [lo, hi) of D.
func (k *SDDMM) rowsChunk(_, lo, hi int) {
	b, rows, cols := k.ld, k.s.Rows, k.s.Cols
	for blk := lo; blk < hi; blk++ {
		r0, r1 := blk*sddmmRows, min((blk+1)*sddmmRows, rows)
		clear(k.d[r0*cols : r1*cols])
		ptr := k.ptr[blk*(cols+1) : (blk+1)*(cols+1)]
		for j := range cols {
			e0, e1 := ptr[j], ptr[j+1]
			if e0 == e1 {
				continue
			}
			sddmmCol(int(e1-e0), k.row[e0:e1], k.dyt[j*b:(j+1)*b], k.xt, b, k.d[j:], cols)
		}
	}
}

// Run writes the masked weight gradient of x (B x Rows) and dy (B x Cols)
// into d (Rows x Cols).
func (k *SDDMM) Run(p *pool.Pool, x, _, dy, d []float32, _ *Epilogue) {
	b := k.s.Batch
	if len(k.xt) < k.s.Rows*k.ld { // the padding columns stay zero
		k.xt = make([]float32, k.s.Rows*k.ld)
	}
	if len(k.dyt) < k.s.Cols*k.ld {
		k.dyt = make([]float32, k.s.Cols*k.ld)
	}
	k.x, k.dy, k.d = x, dy, d
	k.tTx.run(p, b, 64, k.fTx)
	k.tTdy.run(p, b, 64, k.fTdy)
	k.tRows.run(p, ceilDiv(k.s.Rows, sddmmRows), 1, k.fRows)
}

// sddmmColGo is the portable sddmmCol: for the n kept rows r of one
// column, out[r·ld] = y · xt[r·b : r·b+b].
func sddmmColGo(n int, rows []int32, y, xt []float32, b int, out []float32, ld int) {
	y = y[:b]
	for _, r := range rows[:n] {
		x := xt[int(r)*b : int(r)*b+b]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= b; i += 4 {
			s0 += y[i] * x[i]
			s1 += y[i+1] * x[i+1]
			s2 += y[i+2] * x[i+2]
			s3 += y[i+3] * x[i+3]
		}
		for ; i < b; i++ {
			s0 += y[i] * x[i]
		}
		out[int(r)*ld] = (s0 + s1) + (s2 + s3)
	}
}
