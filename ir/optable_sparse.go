package ir

import (
	"fmt"
	"math"
)

// Sparse training ops (see compiler/sparsity.go and the fuse-sparse-masks
// pass). A masked layer keeps its dense weight W [in, out] and a 0/1 mask M
// of the same shape as state; the forward pass multiplies by W ⊙ M (a plain
// mul). Two more pieces of state travel with each mask:
//
//   - gen, an i32 scalar: the mask's generation, a hash of its contents that
//     mask_update rewrites whenever it writes M. Kernels that keep a
//     compressed form of a mask (index lists, occupied blocks) rebuild it
//     only when gen changes, so a mask costs nothing to re-read per step.
//   - the schedule, as attributes of mask_update: which density the mask has
//     at each step and how it is chosen.
//
// A mask holds 0s and 1s (mask_update writes nothing else). The reference
// (ir/interp) and dense-with-mask kernels multiply by it; the compressed CPU
// kernels read it as a set (non-zero = kept), which is the same function on
// such masks.
//
// Mask patterns (attribute "pattern"): "unstructured"; "nm" (attributes n
// and m: exactly n non-zeros in every group of m consecutive rows, i.e.
// input features, of each column); "block" (attribute block = [rows,
// cols]: whole blocks are kept or pruned).
func init() {
	pattern := AttrDef{Name: "pattern", Kind: AttrString, OneOf: []string{"unstructured", "nm", "block"}}
	shape := []AttrDef{{Name: "n", Kind: AttrInt}, {Name: "m", Kind: AttrInt}, {Name: "block", Kind: AttrInts}}
	Register(&OpDef{Name: "mask_update", MinArgs: 4, MaxArgs: 4, Results: 3,
		Attrs: append([]AttrDef{
			{Name: "pattern", Kind: AttrString, Required: true, OneOf: pattern.OneOf},
			{Name: "init", Kind: AttrString, OneOf: []string{"random", "magnitude"}},
			{Name: "schedule", Kind: AttrString, OneOf: []string{"static", "gradual", "reselect"}},
			{Name: "density", Kind: AttrFloat, Required: true},
			{Name: "initial_density", Kind: AttrFloat},
			{Name: "start", Kind: AttrInt}, {Name: "end", Kind: AttrInt}, {Name: "every", Kind: AttrInt},
			{Name: "dense_at", Kind: AttrInt}, {Name: "seed", Kind: AttrInt},
		}, shape...),
		Infer: inferMaskUpdate,
		Doc:   "(w, m, gen, step) -> (w', m', gen'): the mask at a step (init, re-selection, pruning or the switch to dense)"})

	kernel := AttrDef{Name: "kernel", Kind: AttrString, Required: true, OneOf: MaskedKernels}
	common := append([]AttrDef{kernel, pattern, {Name: "density", Kind: AttrFloat}, {Name: "dense_above", Kind: AttrFloat}}, shape...)
	Register(&OpDef{Name: "masked_matmul", MinArgs: 4, MaxArgs: 5, Results: 1, Pure: true, Fused: true,
		Attrs: append(append([]AttrDef{}, common...), AttrDef{Name: "transpose_b", Kind: AttrBool},
			AttrDef{Name: "act", Kind: AttrString, OneOf: append([]string{"none"}, Activations...)}),
		Infer: inferMaskedMatmul,
		Doc:   "epilogue(a·op(w ⊙ m)), op = transpose when transpose_b: a masked matmul that skips pruned weights"})
	Register(&OpDef{Name: "masked_matmul_dw", MinArgs: 4, MaxArgs: 4, Results: 1, Pure: true, Fused: true,
		Attrs: append([]AttrDef{}, common...),
		Infer: inferMaskedDW,
		Doc:   "(xᵀ·dy) ⊙ m: a weight gradient computed only where the mask keeps weights"})
}

// MaskedKernels are the kernels a masked matmul can be lowered to:
// compressed N:M, block-sparse (dense tiles over occupied blocks only),
// CSR (unstructured index lists) and dense-with-mask.
var MaskedKernels = []string{"nm", "block", "csr", "dense"}

func inferMaskUpdate(args []Type, a Attrs) ([]Type, error) {
	w, m, gen, step := args[0], args[1], args[2], args[3]
	if w.DType != F32 || w.Rank() != 2 || !m.Equal(w) {
		return nil, fmt.Errorf("want w and m f32 matrices of one shape, got %s and %s", w, m)
	}
	if !gen.Equal(Scalar(I32)) || !step.Equal(Scalar(I32)) {
		return nil, fmt.Errorf("gen and step must be i32 scalars, got %s and %s", gen, step)
	}
	if err := checkMaskShape(w, a); err != nil {
		return nil, err
	}
	return []Type{w, m, gen}, nil
}

// checkMaskShape checks the pattern attributes against a weight's shape.
func checkMaskShape(w Type, a Attrs) error {
	switch a.Str("pattern", "unstructured") {
	case "nm":
		n, m := a.Int("n", 0), a.Int("m", 0)
		if n < 1 || m <= n {
			return fmt.Errorf("pattern nm needs 0 < n < m, got n=%d m=%d", n, m)
		}
		if w.Shape[0]%m != 0 {
			return fmt.Errorf("pattern %d:%d needs the %d input rows of %s to be a multiple of %d", n, m, w.Shape[0], w, m)
		}
	case "block":
		b := a.Ints("block")
		if len(b) != 2 || b[0] < 1 || b[1] < 1 {
			return fmt.Errorf("pattern block needs block = [rows, cols] > 0, got %v", b)
		}
		if w.Shape[0]%b[0] != 0 || w.Shape[1]%b[1] != 0 {
			return fmt.Errorf("blocks of %dx%d do not tile %s", b[0], b[1], w)
		}
	}
	return nil
}

func checkMaskArgs(w, m, gen Type, a Attrs) error {
	if !m.Equal(w) {
		return fmt.Errorf("mask %s does not match the weight %s", m, w)
	}
	if !gen.Equal(Scalar(I32)) {
		return fmt.Errorf("gen must be an i32 scalar, got %s", gen)
	}
	return checkMaskShape(w, a)
}

func inferMaskedMatmul(args []Type, a Attrs) ([]Type, error) {
	if err := checkMaskArgs(args[1], args[2], args[3], a); err != nil {
		return nil, err
	}
	gemmArgs := []Type{args[0], args[1]}
	if len(args) == 5 {
		gemmArgs = append(gemmArgs, args[4])
	}
	return inferGemmEpilogue(gemmArgs, Attrs{"transpose_b": a.Bool("transpose_b", false)})
}

func inferMaskedDW(args []Type, a Attrs) ([]Type, error) {
	if err := checkMaskArgs(args[2], args[2], args[3], a); err != nil {
		return nil, err
	}
	out, err := inferMatmul(args[:2], Attrs{"transpose_a": true})
	if err != nil {
		return nil, err
	}
	if !out[0].Equal(args[2]) {
		return nil, fmt.Errorf("xᵀ·dy is %s, the mask is %s", out[0], args[2])
	}
	return out, nil
}

// MaskDensityAt is the density a mask_update with attributes a gives at a
// step (0-based: the step about to run). It is the op's definition, shared
// by every implementation and by `expc explain`:
//
//	static, reselect: density
//	gradual:          density + (initial - density)·(1 - p)³, p = (step - start)/(end - start) clipped to [0, 1]
//	from dense_at on: 1
func MaskDensityAt(a Attrs, step int) float64 {
	if d := a.Int("dense_at", 0); d > 0 && step >= d {
		return 1
	}
	final := a.Float("density", 1)
	if a.Str("schedule", "static") != "gradual" {
		return final
	}
	initial := a.Float("initial_density", 1)
	start, end := a.Int("start", 0), a.Int("end", 0)
	p := 1.0
	if end > start {
		p = math.Min(math.Max(float64(step-start)/float64(end-start), 0), 1)
	}
	q := 1 - p
	return final + (initial-final)*q*q*q
}

// MaskKeep is how many of total units (weights, or blocks) a mask of the
// given density keeps: the nearest integer, at least one.
func MaskKeep(total int, density float64) int {
	if total <= 0 {
		return 0
	}
	k := int(math.Round(density * float64(total)))
	return min(max(k, 1), total)
}

// MaskGen is the generation hash mask_update writes: FNV-1a over the flat
// indices of the kept positions in ascending order, never 0 (0 means "no
// mask chosen yet").
type MaskGen uint32

// NewMaskGen starts a hash.
func NewMaskGen() MaskGen { return 2166136261 }

// Add folds in the next kept flat index.
func (g MaskGen) Add(i int) MaskGen { return (g ^ MaskGen(uint32(i))) * 16777619 }

// Value is the generation to store.
func (g MaskGen) Value() int32 {
	if g == 0 {
		return 1
	}
	return int32(g)
}
