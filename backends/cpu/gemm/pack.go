package gemm

import "unsafe"

// Packing copies a block of op(A) or op(B) into the contiguous panel layout the
// micro-kernels stream through, so the kernels never see strides or
// transposes. Partial panels are padded with zeros, which lets edge tiles use
// the same kernel (their extra rows/columns are discarded).
//
// Both operands have one "transposing" layout, where a panel gathers one
// element from each of mr (or nr) stored rows per k step. Those loops read
// the rows as parallel streams through unchecked pointers: with bounds checks
// on every element packing cost a fifth of the multiply.

// packA writes panels [pLo, pHi) of the mc x kc block of op(A) whose top-left
// element is (i0, p0), scaled by alpha. Panel q holds rows i0+q*mr ... as
// dst[q*kc*mr + p*mr + r] = alpha * op(A)[i0+q*mr+r, p0+p].
func packA(dst, a []float32, lda int, trans bool, i0, mc, p0, kc, mr int, alpha float32, pLo, pHi int) {
	for q := pLo; q < pHi; q++ {
		d := dst[q*kc*mr : (q+1)*kc*mr]
		rows := min(mr, mc-q*mr)
		i := i0 + q*mr
		if trans {
			// op(A)[i, p] = a[p*lda+i]: each k step is a contiguous run.
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+i : (p0+p)*lda+i+rows]
				dp := d[p*mr : p*mr+mr]
				scaleCopy(dp, src, alpha)
				clear(dp[rows:])
			}
			continue
		}
		// op(A)[i, p] = a[i*lda+p]: gather across rows.
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
	// Process rows in groups of four: four input streams, one output stream.
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0 := src
		s1 := unsafe.Add(s0, 4*ld)
		s2 := unsafe.Add(s1, 4*ld)
		s3 := unsafe.Add(s2, 4*ld)
		for p := 0; p < kc; p++ {
			o := uintptr(p) * 4
			dp := (*[4]float32)(d[p*w+r:])
			dp[0] = alpha * *(*float32)(unsafe.Add(s0, o))
			dp[1] = alpha * *(*float32)(unsafe.Add(s1, o))
			dp[2] = alpha * *(*float32)(unsafe.Add(s2, o))
			dp[3] = alpha * *(*float32)(unsafe.Add(s3, o))
		}
		src = unsafe.Add(s3, 4*ld)
	}
	for ; r < rows; r++ {
		for p := 0; p < kc; p++ {
			d[p*w+r] = alpha * *(*float32)(unsafe.Add(src, uintptr(p)*4))
		}
		src = unsafe.Add(src, 4*ld)
	}
	if rows < w {
		for p := 0; p < kc; p++ {
			clear(d[p*w+rows : p*w+w])
		}
	}
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
