package sparse

// transpose writes dst[c*ldd + r] = src[r*lds + c] for r in [r0, r1), c in
// [0, cols): the rows [r0, r1) of src become columns of dst. It works in
// 16x16 blocks so that both sides stream whole cache lines.
func transpose(dst []float32, ldd int, src []float32, lds, r0, r1, cols int) {
	// Sixteen rows of dst at a time, left to right: dst's lines are written
	// in sixteen sequential streams. (Block column by block column wrote
	// one line in each of up to 64 rows 4 KiB apart per step, and the
	// input gradient's last transpose took 0.8 ms a call on one core.)
	for cb := 0; cb < cols; cb += 16 {
		for rb := r0; rb < r1; rb += 16 {
			transposeBlock(dst, ldd, src, lds, rb, min(rb+16, r1), cb, min(cb+16, cols))
		}
	}
}

// transposeIntoCache is transpose in the other order, sixteen rows of src
// at a time, left to right: src is read in sixteen sequential streams,
// which the hardware prefetcher follows, and dst's lines are written one
// per row, so dst should be a buffer that stays in cache (the weight
// gradient's chunk of dYᵀ): transpose's order read one line in each of
// 128 rows of dY 4 KiB apart per step.
func transposeIntoCache(dst []float32, ldd int, src []float32, lds, r0, r1, cols int) {
	for rb := r0; rb < r1; rb += 16 {
		for cb := 0; cb < cols; cb += 16 {
			transposeBlock(dst, ldd, src, lds, rb, min(rb+16, r1), cb, min(cb+16, cols))
		}
	}
}

// transposeBlock transposes rows [rb, re) by columns [cb, ce) of src, at
// most 16 x 16: a full block with transpose16, an edge one element by
// element.
func transposeBlock(dst []float32, ldd int, src []float32, lds, rb, re, cb, ce int) {
	if re-rb == 16 && ce-cb == 16 {
		transpose16(dst[cb*ldd+rb:], ldd, src[rb*lds+cb:], lds)
		return
	}
	for r := rb; r < re; r++ {
		for c, v := range src[r*lds+cb : r*lds+ce] {
			dst[(cb+c)*ldd+r] = v
		}
	}
}

// transpose16 transposes one full 16x16 block.
var transpose16 = transpose16Go

// transpose16Go is the portable transpose16.
func transpose16Go(dst []float32, ldd int, src []float32, lds int) {
	var blk [16][16]float32
	for r := range 16 {
		copy(blk[r][:], src[r*lds:r*lds+16])
	}
	for c := range 16 {
		d := dst[c*ldd : c*ldd+16]
		d[0], d[1], d[2], d[3] = blk[0][c], blk[1][c], blk[2][c], blk[3][c]
		d[4], d[5], d[6], d[7] = blk[4][c], blk[5][c], blk[6][c], blk[7][c]
		d[8], d[9], d[10], d[11] = blk[8][c], blk[9][c], blk[10][c], blk[11][c]
		d[12], d[13], d[14], d[15] = blk[12][c], blk[13][c], blk[14][c], blk[15][c]
	}
}
