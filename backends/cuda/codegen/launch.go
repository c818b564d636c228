package codegen

import (
	"strconv"

	"github.com/expc-dev/expc/ir"
)

// The CUDA target's lowering choices: for each kernel, the variant and the
// launch shape that the generator will use. lowering's cuda pass records
// them in Kernel.Launch, so they are part of the plan (and its golden file);
// Choose is also what the generator falls back to for a plan built for
// another target (`expc explain --format cuda` of a CPU plan).

// chooseFunc picks a kernel's launch attributes.
type chooseFunc func(plan *ir.Plan, k *ir.Kernel) ir.Attrs

var choosers = map[string]chooseFunc{}

// chooseFor registers the chooser of ops.
func chooseFor(fn chooseFunc, ops ...string) {
	for _, op := range ops {
		if _, dup := choosers[op]; dup {
			panic("codegen: chooser registered twice: " + op)
		}
		choosers[op] = fn
	}
}

// Choose returns the CUDA launch attributes for kernel k of plan (nil when
// its op needs none).
func Choose(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
	if fn, ok := choosers[k.Op]; ok {
		return fn(plan, k)
	}
	return nil
}

// Grid-stride kernels: 256 threads a block, at most maxBlocks blocks (each
// thread then loops); enough blocks to fill any current GPU several times.
const (
	blockThreads = 256
	maxBlocks    = 4096
	warpSize     = 32
	rowsPerBlock = blockThreads / warpSize // warp-per-row kernels
)

// streamChoice is the choice of a grid-stride kernel over n elements.
func streamChoice(n int64) ir.Attrs {
	blocks := min((n+blockThreads-1)/blockThreads, maxBlocks)
	return ir.Attrs{"block": blockThreads, "grid": int(max(blocks, 1))}
}

// firstOutElems chooses a grid-stride launch over the first output.
func firstOutElems(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
	return streamChoice(plan.Buffers[k.Outs[0]].Type.Shape.Elems())
}

// gemmTile is a GEMM tiling: a block computes BM x BN of C in steps of BK,
// each thread TM x TN of it.
type gemmTile struct{ BM, BN, BK, TM, TN int }

func (t gemmTile) threads() int { return (t.BM / t.TM) * (t.BN / t.TN) }
func (t gemmTile) ints() []int  { return []int{t.BM, t.BN, t.BK, t.TM, t.TN} }
func (t gemmTile) String() string {
	return strconv.Itoa(t.BM) + "x" + strconv.Itoa(t.BN) + "x" + strconv.Itoa(t.BK) + "_" + strconv.Itoa(t.TM) + "x" + strconv.Itoa(t.TN)
}

// gemmTiles are the tilings the generator knows, all of 256 threads.
var gemmTiles = []gemmTile{
	{128, 128, 8, 8, 8}, // large products: 64 accumulators a thread
	{64, 64, 16, 4, 4},  // medium
	{64, 16, 16, 4, 1},  // narrow outputs (a classifier's logits)
	{32, 32, 16, 2, 2},  // small
}

// chooseGemmTile picks the largest square tile that still gives the GPU
// enough blocks to fill it (about two waves on a 132-SM H100); narrow
// outputs take the narrow tile, and small products the smallest tile.
func chooseGemmTile(m, n int) gemmTile {
	if n <= 16 {
		return gemmTiles[2]
	}
	for _, t := range []gemmTile{gemmTiles[0], gemmTiles[1]} {
		if blocks := ((m + t.BM - 1) / t.BM) * ((n + t.BN - 1) / t.BN); blocks >= minGemmBlocks {
			return t
		}
	}
	return gemmTiles[3]
}

const minGemmBlocks = 256

func tileFromAttrs(a ir.Attrs) (gemmTile, bool) {
	v := a.Ints("tile")
	if len(v) != 5 {
		return gemmTile{}, false
	}
	t := gemmTile{v[0], v[1], v[2], v[3], v[4]}
	for _, known := range gemmTiles {
		if t == known {
			return t, true
		}
	}
	return gemmTile{}, false
}
