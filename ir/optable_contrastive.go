package ir

import "fmt"

// Ops of contrastive losses. The unfused graph is
//
//	z    = l2_normalize(h)                 rows on the unit sphere
//	S    = matmul(z, z) {transpose_b}      in-batch similarities (or za·zbᵀ)
//	L    = scale(S) | row_scale(S, 1/τ)    temperature (fixed, scheduled, per row)
//	M, P = contrastive_mask(S, [y], [G])   who is in each row's denominator, who is positive
//	loss = soft_xent(L, M, P)              masked log-sum-exp minus the positive logits
//
// and the pass fuse-contrastive turns it, with its backward, into one
// contrastive_xent_fused kernel that never materialises an N×N matrix.
// gather and scatter_add carry per-example state (a learnable temperature
// per training example) into and out of a batch.

// ContrastiveObjectives are the values of the objective attribute:
// nt_xent (2N views, positive = the other view, in the denominator),
// decoupled (the same without the positive in the denominator), supcon
// (every other row with the same label is a positive) and dual (two towers:
// row i of A against every row of B, positive = row i of B).
var ContrastiveObjectives = []string{"nt_xent", "decoupled", "supcon", "dual"}

func init() {
	Register(&OpDef{Name: "l2_normalize", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Infer: inferMatrix, Doc: "x / max(‖x‖, 1e-12) for each row of x[R,d]"})
	Register(&OpDef{Name: "l2_normalize_grad", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if _, err := inferMatrix(args[:1], a); err != nil {
				return nil, err
			}
			return sameShapeF32(args, a)
		}, Doc: "(dy, x) -> d l2_normalize(x) · dy = (dy − z(z·dy)) / ‖x‖ per row, z = x/‖x‖"})
	Register(&OpDef{Name: "row_scale", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: inferRowScale, Doc: "x[i,j] · s[i] (s a vector over rows, or a scalar)"})
	Register(&OpDef{Name: "contrastive_mask", MinArgs: 1, MaxArgs: 3, Results: 2, Pure: true,
		Attrs: []AttrDef{
			{Name: "objective", Kind: AttrString, Required: true, OneOf: ContrastiveObjectives},
			{Name: "hard_k", Kind: AttrInt}, {Name: "guided", Kind: AttrBool},
			{Name: "classes", Kind: AttrInt}, // supcon: labels are in [0, classes)
		},
		Infer: inferContrastiveMask,
		Doc:   "(S[R,C], [labels i32[R] for supcon], [guide similarities G[R,C] when guided]) -> (M, P): M[i,j] = 1 when j is in row i's denominator, P[i,·] the positive weights (rows sum to 1 or 0)"})
	Register(&OpDef{Name: "soft_xent", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true,
		Infer: inferSoftXent, Doc: "mean over rows with a positive and a non-empty denominator of log Σ_j M_ij·exp(L_ij) − Σ_j P_ij·L_ij"})
	Register(&OpDef{Name: "soft_xent_grad", MinArgs: 4, MaxArgs: 4, Results: 1, Pure: true,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if _, err := inferSoftXent(args[:3], a); err != nil {
				return nil, err
			}
			if !args[3].Equal(Scalar(F32)) {
				return nil, fmt.Errorf("dloss must be a f32 scalar, got %s", args[3])
			}
			return []Type{args[0]}, nil
		}, Doc: "(L, M, P, dloss) -> dloss/rows · (M∘softmax_M(L) − P)"})
	Register(&OpDef{Name: "gather", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: inferGather, Doc: "(table f32[K], idx i32[R]) -> table[idx[i]], 0 where idx is outside [0, K)"})
	Register(&OpDef{Name: "scatter_add", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "size", Kind: AttrInt, Required: true}},
		Infer: inferScatterAdd, Doc: "(x f32[R], idx i32[R]) -> out[size], out[k] = Σ_{i: idx[i]=k} x[i] (other indices dropped)"})

	Register(&OpDef{Name: "contrastive_xent_fused", MinArgs: 2, MaxArgs: 7, Results: 3, Pure: true, Fused: true,
		Attrs: ContrastiveFusedAttrs,
		Infer: inferContrastiveFused,
		Doc:   "the contrastive loss and its gradients in one tiled pass: the similarity matrix is streamed in blocks with an online log-sum-exp and recomputed in the backward"})
}

// ContrastiveFusedAttrs are the attributes of contrastive_xent_fused.
// Its operands, in order: a (rows, [R,d]); b ([C,d], dual only); invtau
// ([] or [R], when tau_input); labels (i32[R], supcon); ga and, for dual,
// gb (guide embeddings, when guided); dloss (scalar). Its results: loss;
// da; db (dual only); dinvtau (when want_dtau). With normalize, a and b are
// the rows before l2_normalize and da, db gradients with respect to them;
// otherwise a, b are unit rows and da, db the gradients of the loss with
// respect to them.
var ContrastiveFusedAttrs = []AttrDef{
	{Name: "objective", Kind: AttrString, Required: true, OneOf: ContrastiveObjectives},
	{Name: "tile", Kind: AttrInt, Required: true},
	{Name: "normalize", Kind: AttrBool},
	{Name: "inv_temperature", Kind: AttrFloat}, // the fixed 1/τ when tau_input is false
	{Name: "tau_input", Kind: AttrBool},
	{Name: "want_dtau", Kind: AttrBool},
	{Name: "hard_k", Kind: AttrInt},
	{Name: "guided", Kind: AttrBool},
	{Name: "classes", Kind: AttrInt}, // supcon: labels are in [0, classes)
}

// ContrastiveOperands says where each operand of contrastive_xent_fused is
// (-1: absent) and how many results it has.
type ContrastiveOperands struct {
	A, B, InvTau, Labels, GuideA, GuideB, DLoss int
	Args                                        int
	DA, DB, DTau                                int // result positions (DB, DTau: 2 or -1)
}

// ContrastiveLayout computes the operand layout from the attributes.
func ContrastiveLayout(a Attrs) ContrastiveOperands {
	dual := a.Str("objective", "") == "dual"
	o := ContrastiveOperands{A: 0, B: -1, InvTau: -1, Labels: -1, GuideA: -1, GuideB: -1, DB: -1, DTau: -1}
	n := 1
	next := func(on bool) int {
		if !on {
			return -1
		}
		n++
		return n - 1
	}
	o.B = next(dual)
	o.InvTau = next(a.Bool("tau_input", false))
	o.Labels = next(a.Str("objective", "") == "supcon")
	o.GuideA = next(a.Bool("guided", false))
	o.GuideB = next(a.Bool("guided", false) && dual)
	o.DLoss = next(true)
	o.Args = n
	o.DA = 1
	switch {
	case dual:
		o.DB = 2
	case a.Bool("want_dtau", false):
		o.DTau = 2
	}
	return o
}

func inferMatrix(args []Type, _ Attrs) ([]Type, error) {
	if args[0].DType != F32 || args[0].Rank() != 2 {
		return nil, fmt.Errorf("want f32[rows, d], got %s", args[0])
	}
	return []Type{args[0]}, nil
}

func inferRowScale(args []Type, _ Attrs) ([]Type, error) {
	x, s := args[0], args[1]
	if x.DType != F32 || x.Rank() != 2 || s.DType != F32 || !(s.Rank() == 0 || s.Rank() == 1 && s.Shape[0] == x.Shape[0]) {
		return nil, fmt.Errorf("want x f32[r,c] and s f32[r] or f32[], got %s and %s", x, s)
	}
	return []Type{x}, nil
}

func inferContrastiveMask(args []Type, a Attrs) ([]Type, error) {
	s := args[0]
	if s.DType != F32 || s.Rank() != 2 {
		return nil, fmt.Errorf("similarities must be f32[r,c], got %s", s)
	}
	obj := a.Str("objective", "")
	r, c := s.Shape[0], s.Shape[1]
	switch {
	case obj == "dual" && r != c:
		return nil, fmt.Errorf("dual: similarities must be square (row i's positive is column i), got %s", s)
	case obj != "dual" && (r != c || r%2 != 0):
		return nil, fmt.Errorf("%s: similarities of 2N views must be square with an even side, got %s", obj, s)
	}
	want := 1
	if obj == "supcon" {
		if len(args) < 2 || args[1].DType != I32 || !args[1].Shape.Equal(Shape{r}) {
			return nil, fmt.Errorf("supcon needs labels i32[%d] as the second operand", r)
		}
		if a.Int("classes", 0) <= 0 {
			return nil, fmt.Errorf("supcon needs classes > 0")
		}
		want++
	}
	if a.Bool("guided", false) {
		if len(args) <= want || !args[want].Equal(s) {
			return nil, fmt.Errorf("guided needs the guide's similarities %s as operand %d", s, want+1)
		}
		want++
	}
	if len(args) != want {
		return nil, fmt.Errorf("%d operands, the attributes call for %d", len(args), want)
	}
	if k := a.Int("hard_k", 0); k < 0 {
		return nil, fmt.Errorf("hard_k %d is negative", k)
	}
	if obj == "supcon" && (a.Int("hard_k", 0) > 0 || a.Bool("guided", false)) {
		return nil, fmt.Errorf("supcon does not take hard or guided negatives")
	}
	return []Type{s, s}, nil
}

func inferSoftXent(args []Type, _ Attrs) ([]Type, error) {
	l := args[0]
	if l.DType != F32 || l.Rank() != 2 || !args[1].Equal(l) || !args[2].Equal(l) {
		return nil, fmt.Errorf("want logits, mask and positives of one f32[r,c] type, got %s, %s, %s", l, args[1], args[2])
	}
	return []Type{Scalar(F32)}, nil
}

func inferGather(args []Type, _ Attrs) ([]Type, error) {
	t, idx := args[0], args[1]
	if t.DType != F32 || t.Rank() != 1 || idx.DType != I32 || idx.Rank() != 1 {
		return nil, fmt.Errorf("want table f32[k] and indices i32[r], got %s and %s", t, idx)
	}
	return []Type{Tensor(F32, idx.Shape[0])}, nil
}

func inferScatterAdd(args []Type, a Attrs) ([]Type, error) {
	x, idx := args[0], args[1]
	if x.DType != F32 || x.Rank() != 1 || idx.DType != I32 || !idx.Shape.Equal(x.Shape) {
		return nil, fmt.Errorf("want x f32[r] and indices i32[r], got %s and %s", x, idx)
	}
	n := a.Int("size", 0)
	if n <= 0 {
		return nil, fmt.Errorf("size %d must be positive", n)
	}
	return []Type{Tensor(F32, n)}, nil
}

func inferContrastiveFused(args []Type, a Attrs) ([]Type, error) {
	o := ContrastiveLayout(a)
	if len(args) != o.Args {
		return nil, fmt.Errorf("%d operands, the attributes call for %d", len(args), o.Args)
	}
	za := args[o.A]
	if za.DType != F32 || za.Rank() != 2 {
		return nil, fmt.Errorf("rows must be f32[r,d], got %s", za)
	}
	r := za.Shape[0]
	obj := a.Str("objective", "")
	if obj != "dual" && r%2 != 0 {
		return nil, fmt.Errorf("%s: 2N views need an even number of rows, got %s", obj, za)
	}
	if o.B >= 0 && !args[o.B].Equal(za) {
		return nil, fmt.Errorf("dual: both towers must be %s, got %s", za, args[o.B])
	}
	if o.InvTau >= 0 {
		t := args[o.InvTau]
		if t.DType != F32 || !(t.Rank() == 0 || t.Rank() == 1 && t.Shape[0] == r) {
			return nil, fmt.Errorf("inverse temperature must be f32[] or f32[%d], got %s", r, t)
		}
	} else if a.Float("inv_temperature", 0) <= 0 {
		return nil, fmt.Errorf("without a temperature operand inv_temperature must be > 0")
	}
	if o.Labels >= 0 && !args[o.Labels].Equal(Tensor(I32, r)) {
		return nil, fmt.Errorf("labels must be i32[%d], got %s", r, args[o.Labels])
	}
	for _, g := range []int{o.GuideA, o.GuideB} {
		if g >= 0 && (args[g].DType != F32 || args[g].Rank() != 2 || args[g].Shape[0] != r) {
			return nil, fmt.Errorf("guide embeddings must be f32[%d, k], got %s", r, args[g])
		}
	}
	if !args[o.DLoss].Equal(Scalar(F32)) {
		return nil, fmt.Errorf("dloss must be a f32 scalar, got %s", args[o.DLoss])
	}
	if a.Int("tile", 0) <= 0 {
		return nil, fmt.Errorf("tile %d must be positive", a.Int("tile", 0))
	}
	if a.Bool("want_dtau", false) && (o.InvTau < 0 || args[o.InvTau].Rank() != 1) {
		return nil, fmt.Errorf("want_dtau needs a per-row inverse temperature operand")
	}
	if o.B >= 0 && a.Bool("want_dtau", false) {
		return nil, fmt.Errorf("dual does not take a per-row temperature gradient")
	}
	aux := Scalar(F32)
	switch {
	case o.B >= 0:
		aux = za
	case o.DTau >= 0:
		aux = args[o.InvTau]
	}
	return []Type{Scalar(F32), za, aux}, nil
}
