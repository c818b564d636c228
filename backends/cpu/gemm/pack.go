package gemm

import "unsafe"

// Packing copies a block of op(A) or op(B) into the contiguous panel layout the
// micro-kernels stream through, so the kernels never see strides or
// transposes. Partial panels are padded with zeros, which lets edge tiles use
// the same kernel (their extra rows/columns are discarded).
//
// Both operands have one "transposing" layout, where a panel gathers one
// element from each of mr (or nr) stored rows per k step. With AVX-512 that
// is a 16x16 in-register transpose (kernel_gen.go); otherwise, and for edges,
// a loop reads the rows as parallel streams through unchecked pointers (with
// bounds checks on every element, packing cost a fifth of the multiply).

// packA writes panels [pLo, pHi) of the mc x kc block of op(A) whose top-left
// element is (i0, p0), scaled by alpha. Panel q holds rows i0+q*mr ... as
// dst[q*kc*mr + p*mr + r] = alpha * op(A)[i0+q*mr+r, p0+p].
func packA(dst, a []float32, lda int, trans bool, i0, mc, p0, kc, mr int, alpha float32, pLo, pHi int) {
	if trans {
		// op(A)[i, p] = a[p*lda+i]: each k step of a panel is a contiguous
		// run of a stored row.
		for q := pLo; q < pHi; q++ {
			i := i0 + q*mr
			rows := min(mr, mc-q*mr)
			d := dst[q*kc*mr : (q+1)*kc*mr]
			if hasVecPack && mr <= 16 {
				// One masked vector per k step. Masked-off lanes are not
				// stored, so clear a partial panel's padding rows first.
				if rows < mr {
					clear(d)
				}
				_ = a[(p0+kc-1)*lda+i+rows-1]
				copyVec(&d[0], 4*mr, &a[p0*lda+i], 4*lda, kc, uint16(1)<<rows-1, alpha)
				continue
			}
			for p := 0; p < kc; p++ {
				dp := d[p*mr : p*mr+mr]
				scaleCopy(dp, a[(p0+p)*lda+i:(p0+p)*lda+i+rows], alpha)
				clear(dp[rows:])
			}
		}
		return
	}
	for q := pLo; q < pHi; q++ {
		// op(A)[i, p] = a[i*lda+p]: gather across rows.
		d := dst[q*kc*mr : (q+1)*kc*mr]
		rows := min(mr, mc-q*mr)
		i := i0 + q*mr
		_ = a[(i+rows-1)*lda+p0+kc-1] // bounds of the whole gather
		gather(d, mr, unsafe.Pointer(&a[i*lda+p0]), lda, rows, kc, alpha)
	}
}

// packB writes the kc x nc block of op(B) at (p0, j0) as panels of nr columns:
// dst[q*kc*nr + p*nr + c] = op(B)[p0+p, j0+q*nr+c].
func packB(dst, b []float32, ldb int, trans bool, p0, kc, j0, nc, nr int) {
	for q := 0; q*nr < nc; q++ {
		d := dst[q*kc*nr : (q+1)*kc*nr]
		cols := min(nr, nc-q*nr)
		j := j0 + q*nr
		if trans {
			// op(B)[p, j] = b[j*ldb+p]: gather across stored rows.
			_ = b[(j+cols-1)*ldb+p0+kc-1]
			gather(d, nr, unsafe.Pointer(&b[j*ldb+p0]), ldb, cols, kc, 1)
			continue
		}
		// op(B)[p, j] = b[p*ldb+j]: rows of the panel are contiguous.
		switch {
		case nr == 32 && cols == 32:
			for p := 0; p < kc; p++ {
				*(*[32]float32)(d[p*32:]) = *(*[32]float32)(b[(p0+p)*ldb+j:])
			}
		case nr == 16 && cols == 16:
			for p := 0; p < kc; p++ {
				*(*[16]float32)(d[p*16:]) = *(*[16]float32)(b[(p0+p)*ldb+j:])
			}
		default:
			for p := 0; p < kc; p++ {
				dp := d[p*nr : p*nr+nr]
				copy(dp, b[(p0+p)*ldb+j:(p0+p)*ldb+j+cols])
				clear(dp[cols:])
			}
		}
	}
}

// gather sets d[p*w+r] = alpha*src[r*ld+p] for r < rows, p < kc, and zero for
// rows ≤ r < w. The caller has bounds-checked src's extent.
func gather(d []float32, w int, src unsafe.Pointer, ld, rows, kc int, alpha float32) {
	d = d[:kc*w]
	p0 := 0
	if hasVecPack && rows == w && kc >= 16 {
		p0 = transposeFull(d, w, src, ld, kc, alpha)
	}
	// Process rows in groups of four: four input streams, one output stream.
	// (Row pointers are formed only for existing rows: a pointer past the
	// end of the matrix would be invalid for the GC.)
	row := func(r int) unsafe.Pointer { return unsafe.Add(src, 4*r*ld) }
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0, s1, s2, s3 := row(r), row(r+1), row(r+2), row(r+3)
		for p := p0; p < kc; p++ {
			o := uintptr(p) * 4
			dp := (*[4]float32)(d[p*w+r:])
			dp[0] = alpha * *(*float32)(unsafe.Add(s0, o))
			dp[1] = alpha * *(*float32)(unsafe.Add(s1, o))
			dp[2] = alpha * *(*float32)(unsafe.Add(s2, o))
			dp[3] = alpha * *(*float32)(unsafe.Add(s3, o))
		}
	}
	for ; r < rows; r++ {
		s0 := row(r)
		for p := p0; p < kc; p++ {
			d[p*w+r] = alpha * *(*float32)(unsafe.Add(s0, uintptr(p)*4))
		}
	}
	if rows < w {
		for p := 0; p < kc; p++ {
			clear(d[p*w+rows : p*w+w])
		}
	}
}

// hasVecPack says whether the AVX-512 packing helpers transposeVec (an
// in-register 16x16 transpose) and copyVec (a masked strided copy) run on
// this CPU. They are called directly, not through func variables, so their
// pointer arguments do not escape.
var hasVecPack bool

// transposeFull packs the first multiple of 16 k steps of a full panel with
// transposeVec and returns how many it did (0 for unsupported widths).
func transposeFull(d []float32, w int, src unsafe.Pointer, ld, kc int, alpha float32) int {
	blocks := kc / 16
	switch w {
	case 12:
		transposeVec(&d[0], 4*12, (*float32)(src), 4*ld, 12, blocks, 0x0fff, alpha)
	case 16:
		transposeVec(&d[0], 4*16, (*float32)(src), 4*ld, 16, blocks, 0xffff, alpha)
	case 32:
		transposeVec(&d[0], 4*32, (*float32)(src), 4*ld, 16, blocks, 0xffff, alpha)
		transposeVec(&d[16], 4*32, (*float32)(unsafe.Add(src, 4*16*ld)), 4*ld, 16, blocks, 0xffff, alpha)
	default:
		return 0
	}
	return blocks * 16
}

func scaleCopy(dst, src []float32, alpha float32) {
	if alpha == 1 {
		copy(dst, src)
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = alpha * v
	}
}
