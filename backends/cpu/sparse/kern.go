package sparse

// The inner loops, as variables: the portable Go versions here, replaced
// by AVX-512 ones at start-up where the CPU has them (kern_amd64.go).
var (
	spmmTile = spmmTileGo
	sddmmCol = sddmmColGo
	kernRows = kernRowsGo
	nmFwd    = nmFwdTileGo
	nmDW     = nmDWGo
	nmPack   = nmPackGo
	nmDX     = nmDXGo
	nmDWRuns = nmDWRunsGo
	// nmVector: the N:4 kernels have a vector path (else the general
	// kernels run N:4 masks).
	nmVector = false
	kernT    = func(n int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
		kernTGo(n, a, lda, microMR, b, ldb, microNR, c, ldc)
	}
)

// The block kernel's register tile: rows of C (broadcast from packed A) by
// columns (vectors of packed B), as in the dense GEMM's AVX-512 kernel.
const microMR, microNR = 12, 32

// nmFwdTileGo is the portable nmFwd: a full 8 x 32 tile of C (+)= the
// kept slots of ngroups groups.
func nmFwdTileGo(n, ngroups int, x []float32, ldx int, wp []float32, ip []uint32, c []float32, ldc, accumulate int) {
	var t [nmRows * 32]float32
	nmFwdGo(n, ngroups, x, ldx, nmRows, wp, ip, t[:], 32)
	for r := range nmRows {
		for l := range 32 {
			if accumulate == 0 {
				c[r*ldc+l] = t[r*32+l]
			} else {
				c[r*ldc+l] += t[r*32+l]
			}
		}
	}
}
