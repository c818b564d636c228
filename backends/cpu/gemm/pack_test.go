package gemm

import "testing"

// TestPack compares packA and packB, with and without the vector helpers,
// against the layouts they promise, including zero padding of partial panels.
func TestPack(t *testing.T) {
	saved := hasVecPack
	defer func() { hasVecPack = saved }()
	r := newRand(t)
	for _, vec := range []bool{false, true} {
		if vec && !saved {
			continue
		}
		hasVecPack = vec
		for _, w := range []int{4, 6, 12, 16, 32} {
			for _, kc := range []int{1, 15, 16, 33, 50} {
				for _, trans := range []bool{false, true} {
					for _, alpha := range []float32{1, -0.5} {
						const rowsTotal, ld0 = 70, 3 // op(X) has rowsTotal rows at offset (5, 2)
						mc := rowsTotal - 5
						// packA: op(A) is rowsTotal x (kc+2).
						ar, ac := rowsTotal, kc+2
						if trans {
							ar, ac = ac, ar
						}
						lda := ac + ld0
						a := randMat(r, ar, ac, lda)
						opA := func(i, p int) float32 {
							if trans {
								return a[p*lda+i]
							}
							return a[i*lda+p]
						}
						panels := ceilDiv(mc, w)
						dst := make([]float32, panels*kc*w)
						for i := range dst {
							dst[i] = 7 // must be overwritten, padding included
						}
						packA(dst, a, lda, trans, 5, mc, 2, kc, w, alpha, 0, panels)
						for q := 0; q < panels; q++ {
							for p := 0; p < kc; p++ {
								for rr := 0; rr < w; rr++ {
									want := float32(0)
									if q*w+rr < mc {
										want = alpha * opA(5+q*w+rr, 2+p)
									}
									if got := dst[q*kc*w+p*w+rr]; got != want {
										t.Fatalf("packA vec=%v w=%d kc=%d trans=%v: panel %d p %d r %d = %v, want %v", vec, w, kc, trans, q, p, rr, got, want)
									}
								}
							}
						}
						// packB: op(B) is (kc+2) x rowsTotal.
						br, bc := kc+2, rowsTotal
						if trans {
							br, bc = bc, br
						}
						ldb := bc + ld0
						b := randMat(r, br, bc, ldb)
						opB := func(p, j int) float32 {
							if trans {
								return b[j*ldb+p]
							}
							return b[p*ldb+j]
						}
						for i := range dst {
							dst[i] = 7
						}
						packB(dst, b, ldb, trans, 2, kc, 5, mc, w)
						for q := 0; q < panels; q++ {
							for p := 0; p < kc; p++ {
								for c := 0; c < w; c++ {
									want := float32(0)
									if q*w+c < mc {
										want = opB(2+p, 5+q*w+c)
									}
									if got := dst[q*kc*w+p*w+c]; got != want {
										t.Fatalf("packB vec=%v w=%d kc=%d trans=%v: panel %d p %d c %d = %v, want %v", vec, w, kc, trans, q, p, c, got, want)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}
