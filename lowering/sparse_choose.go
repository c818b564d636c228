package lowering

import (
	"fmt"
	"math"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// The sparse kernel cost model: which masked-matmul kernel runs each of a
// masked layer's products (forward a·(W⊙M), input gradient dY·(W⊙M)ᵀ,
// weight gradient (xᵀ·dY)⊙M), and why. Times are estimates in seconds for
// the CPU backend on two cores, from throughputs measured by bench/sparse.sh
// (see the constants); `expc explain` prints every candidate's estimate.

// Product names a masked layer's matrix product.
type Product string

const (
	Forward Product = "fwd" // a·(W⊙M)
	InputGr Product = "dx"  // dY·(W⊙M)ᵀ
	WeightG Product = "dw"  // (xᵀ·dY)⊙M
)

// KernelCost is one candidate's estimate.
type KernelCost struct {
	Kernel  string  // nm, block, csr, dense
	Seconds float64 // estimated time per call
	Work    float64 // fraction of the dense multiply-adds it performs
	Note    string  // what the estimate rests on
}

// Throughputs in useful FLOP/s on two cores of the reference machine (AMD
// Zen 5, AVX-512), from bench/sparse.sh and the single-core CPU times of
// backends/cpu/sparse's BenchmarkLayer scaled by 1.75 for the second core:
// the dense GEMM; the compressed N:4 kernels per product (a VPERMPS per
// kept weight in the forward and the 1:4 weight gradient, which share the
// FMA's pipes, so they win by skipping, not by speed; the 2:4 weight
// gradient's dot products and the input gradient's class-sorted entries
// have no permute); other N:M on the index-list kernels; block-sparse (the
// dense micro-kernel over occupied 32x32 tiles, less the packing); CSR
// SpMM and the sampled weight gradient. Packing and transposing the dense operands moves bytes at
// memBW; the dense-with-mask kernels' W ⊙ M (or D ⊙ M) pass at maskBW.
//
// The N:4 figures were refitted on 2026-11-27 at 10:38 UTC with the
// products taking turns (`bench/sparse -batch 256|1024 -only
// fused/2:4/nm/`, 1024x1024 W, three runs each, medians): 1.27 and 4.56 ms
// (forward), 1.10 and 3.99 (input gradient, the class-sorted kernel over
// packed weights), 1.23 and 4.98 (weight gradient), against 1.81 / 1.70 /
// 1.86 and 6.23 / 6.09 / 6.57 for the dense GEMMs. The other N at batch
// 1024 (BenchmarkNMDirections with 1:4 and 3:4 masks): 1:4 2.36 / 2.97 /
// 3.50 ms, 3:4 7.3 (forward) and 5.8 (input gradient) against 6.0 dense,
// so at 3:4 only the input gradient beats dense-with-mask. N:4 weight
// gradients above 2:4 have no vector path.
//
// The 2:4 weight gradient was refitted at 12:40 UTC the same day, after its
// kernel became dot products over the batch (nmdwruns.go): six runs at
// batch 1024 gave 4.20-4.60 ms (median 4.45) against 7.13-7.35 for the
// dense GEMM, so 300 GFLOP/s with the same bytes term. Batch 256 could not
// be timed that hour (the dense GEMM alone ran 1.7 to 4.5 ms from run to
// run), so the bytes term was not refitted.
var rateNM = map[int]map[Product]float64{
	1: {Forward: 360e9, InputGr: 255e9, WeightG: 205e9},
	2: {Forward: 290e9, InputGr: 350e9, WeightG: 300e9},
	3: {Forward: 250e9, InputGr: 330e9},
}

const (
	rateDense   = 340e9
	maskBW      = 60e9
	rateNMSlow  = 40e9
	rateBlock   = 140e9
	rateCSR     = 70e9
	rateSDDMM   = 45e9
	memBW       = 12e9
	blockTile   = 32   // the block kernel's tile (rows and columns of W)
	callLatency = 5e-6 // fixed cost of a kernel call (waking workers, setup)
)

// maskShape is what the cost model knows about a mask.
type maskShape struct {
	pattern    string // unstructured, nm, block
	n, m       int
	bh, bw     int
	density    float64
	rows, cols int // W's shape
}

func maskShapeOf(attrs ir.Attrs, w ir.Type) maskShape {
	s := maskShape{pattern: attrs.Str("pattern", "unstructured"), density: attrs.Float("density", 1),
		rows: w.Shape[0], cols: w.Shape[1]}
	switch s.pattern {
	case "nm":
		s.n, s.m = attrs.Int("n", 1), attrs.Int("m", 1)
		s.density = float64(s.n) / float64(s.m)
	case "block":
		if b := attrs.Ints("block"); len(b) == 2 {
			s.bh, s.bw = b[0], b[1]
		}
	}
	return s
}

// tileDensity is the expected fraction of the block kernel's 32x32 tiles
// that hold a kept weight.
func (s maskShape) tileDensity() float64 {
	bh, bw := 1, 1
	if s.pattern == "block" {
		bh, bw = s.bh, s.bw
	}
	if s.pattern == "nm" {
		return 1
	}
	per := math.Max(1, float64(blockTile)/float64(bh)) * math.Max(1, float64(blockTile)/float64(bw))
	return 1 - math.Pow(1-s.density, per)
}

// MaskedCosts estimates every kernel that can run product p of a masked
// layer whose dense operand has `batch` rows, for a mask of the given shape
// and attributes; the cheapest comes first.
func MaskedCosts(p Product, batch int, w ir.Type, attrs ir.Attrs) []KernelCost {
	s := maskShapeOf(attrs, w)
	macs := 2 * float64(batch) * float64(s.rows) * float64(s.cols)
	wBytes := float64(s.rows*s.cols) * 4
	aBytes := float64(batch*s.rows) * 4
	oBytes := float64(batch*s.cols) * 4
	if p == InputGr {
		aBytes, oBytes = oBytes, aBytes
	}
	var out []KernelCost
	add := func(k string, work, rate, moved, bw float64, note string) {
		out = append(out, KernelCost{Kernel: k, Work: work, Seconds: callLatency + macs*work/rate + moved/bw, Note: note})
	}
	// dense-with-mask: W ⊙ M (or the product ⊙ M) then a dense GEMM.
	add("dense", 1, rateDense, 3*wBytes, maskBW, "dense GEMM, then the mask multiply")
	switch s.pattern {
	case "nm":
		rate, vector := rateNM[s.n][p]
		note := fmt.Sprintf("compressed %d:%d: %d of every %d multiply-adds", s.n, s.m, s.n, s.m)
		if s.m != 4 || !vector {
			rate, note = rateNMSlow, note+" (no vector path: index lists)"
		}
		add("nm", s.density, rate, aBytes+oBytes+wBytes/2, memBW, note)
	case "block":
		td := s.tileDensity()
		add("block", td, rateBlock, wBytes*td+aBytes, memBW, fmt.Sprintf("dense tiles over the %.0f%% occupied 32x32 tiles", 100*td))
		fallthrough
	default:
		rate := rateCSR
		if p == WeightG {
			rate = rateSDDMM
		}
		add("csr", s.density, rate, 2*aBytes+oBytes+wBytes*s.density*2, memBW, fmt.Sprintf("index lists over the %.1f%% kept weights", 100*s.density))
	}
	slices.SortStableFunc(out, func(a, b KernelCost) int {
		switch {
		case a.Seconds < b.Seconds:
			return -1
		case a.Seconds > b.Seconds:
			return 1
		}
		return 0
	})
	return out
}

// denseAbove is the density above which a csr or block kernel falls back to
// dense-with-mask at run time (masks whose density changes during training:
// gradual pruning starts dense): where the two estimates cross.
func denseAbove(p Product, batch int, w ir.Type, attrs ir.Attrs, kernel string) float64 {
	if kernel != "csr" && kernel != "block" {
		return 0
	}
	lo, hi := 0.0, 1.0
	for range 30 {
		mid := (lo + hi) / 2
		a := attrs.Clone()
		a["density"] = mid
		var k, d float64
		for _, c := range MaskedCosts(p, batch, w, a) {
			switch c.Kernel {
			case kernel:
				k = c.Seconds
			case "dense":
				d = c.Seconds
			}
		}
		if k < d {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Round(lo*1000) / 1000
}
