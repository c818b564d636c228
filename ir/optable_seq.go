package ir

import "fmt"

// Ops of small sequence models (a decoder-only transformer over token
// streams) and of regression heads that read their target from the data.
//
// A token batch arrives as x f32[B, T+1] (token ids, exact in f32) and a row
// mask y i32[B] (negative: a padding row). token_ids turns it into the model's
// inputs (shift 0) and next-token targets (shift 1, -1 on padding rows); the
// next-token loss is softmax_xent over [B·T, V] with those targets.
// Activations are [B·T, D] matrices, row b·T + t being token t of sequence b.

func init() {
	Register(&OpDef{Name: "token_ids", MinArgs: 1, MaxArgs: 2, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "shift", Kind: AttrInt}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			x := args[0]
			if x.DType != F32 || x.Rank() != 2 || x.Shape[1] < 2 {
				return nil, fmt.Errorf("want token ids f32[B, T+1] with T >= 1, got %s", x)
			}
			if s := a.Int("shift", 0); s < 0 || s > 1 {
				return nil, fmt.Errorf("shift %d must be 0 or 1", s)
			}
			if len(args) == 2 && !args[1].Equal(Tensor(I32, x.Shape[0])) {
				return nil, fmt.Errorf("row mask %s does not match %s", args[1], x)
			}
			return []Type{Tensor(I32, x.Shape[0]*(x.Shape[1]-1))}, nil
		}, Doc: "(x f32[B,T+1], [mask i32[B]]) -> i32[B·T]: x[b, shift+t], -1 on rows whose mask is negative"})
	Register(&OpDef{Name: "embed", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			ids, table, pos := args[0], args[1], args[2]
			if !moeIndex(ids) || table.DType != F32 || table.Rank() != 2 || pos.DType != F32 || pos.Rank() != 2 ||
				pos.Shape[1] != table.Shape[1] || pos.Shape[0] < 1 || ids.Shape[0]%pos.Shape[0] != 0 {
				return nil, fmt.Errorf("want ids i32[B·T], table f32[V,D] and positions f32[T,D], got %s, %s, %s", ids, table, pos)
			}
			return []Type{Tensor(F32, ids.Shape[0], table.Shape[1])}, nil
		}, Doc: "(ids i32[N], table[V,D], pos[T,D]) -> table[ids[n]] + pos[n mod T] (a negative id has no token row)"})
	Register(&OpDef{Name: "embed_grad", MinArgs: 2, MaxArgs: 2, Results: 2, Pure: true,
		Attrs: []AttrDef{{Name: "vocab", Kind: AttrInt, Required: true}, {Name: "seq", Kind: AttrInt, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			dy, ids := args[0], args[1]
			v, t := a.Int("vocab", 0), a.Int("seq", 0)
			if dy.DType != F32 || dy.Rank() != 2 || !moeIndex(ids) || ids.Shape[0] != dy.Shape[0] || v < 1 || t < 1 || dy.Shape[0]%t != 0 {
				return nil, fmt.Errorf("want dy f32[N,D], ids i32[N], vocab >= 1 and seq dividing N, got %s, %s, vocab %d, seq %d", dy, ids, v, t)
			}
			return []Type{Tensor(F32, v, dy.Shape[1]), Tensor(F32, t, dy.Shape[1])}, nil
		}, Doc: "(dy[N,D], ids) -> (dtable[V,D], dpos[T,D]): the gradients of embed"})
	lnAttrs := []AttrDef{{Name: "eps", Kind: AttrFloat}}
	Register(&OpDef{Name: "layer_norm", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true, Attrs: lnAttrs,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			return []Type{args[0]}, seqNormArgs(args[0], args[1], args[2])
		}, Doc: "(x[N,D], γ[D], β[D]) -> (x − mean)/sqrt(var + eps)·γ + β per row (eps default 1e-5)"})
	Register(&OpDef{Name: "layer_norm_grad", MinArgs: 3, MaxArgs: 3, Results: 3, Pure: true, Attrs: lnAttrs,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			if !args[0].Equal(args[1]) {
				return nil, fmt.Errorf("dy %s does not match x %s", args[0], args[1])
			}
			return []Type{args[1], args[2], args[2]}, seqNormArgs(args[1], args[2], args[2])
		}, Doc: "(dy, x, γ) -> (dx, dγ, dβ)"})
	attnAttrs := []AttrDef{{Name: "heads", Kind: AttrInt, Required: true}, {Name: "seq", Kind: AttrInt, Required: true}, {Name: "causal", Kind: AttrBool}}
	Register(&OpDef{Name: "attention", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true, Attrs: attnAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			return []Type{args[0]}, seqAttention(args, a)
		}, Doc: "(q, k, v [B·T, D]) -> per sequence and head, softmax(q·kᵀ/√(D/heads), causal mask)·v"})
	Register(&OpDef{Name: "attention_grad", MinArgs: 4, MaxArgs: 4, Results: 3, Pure: true, Attrs: attnAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if !args[0].Equal(args[1]) {
				return nil, fmt.Errorf("do %s does not match q %s", args[0], args[1])
			}
			return []Type{args[1], args[1], args[1]}, seqAttention(args[1:], a)
		}, Doc: "(do, q, k, v) -> (dq, dk, dv), recomputing the attention probabilities"})
	Register(&OpDef{Name: "slice_cols", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "start", Kind: AttrInt, Required: true}, {Name: "end", Kind: AttrInt, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			x, s, e := args[0], a.Int("start", -1), a.Int("end", -1)
			if x.DType != F32 || x.Rank() != 2 || s < 0 || e <= s || e > x.Shape[1] {
				return nil, fmt.Errorf("want x f32[B,F] and 0 <= start < end <= F, got %s, start %d, end %d", x, s, e)
			}
			return []Type{Tensor(F32, x.Shape[0], e-s)}, nil
		}, Doc: "x[:, start:end]"})
	Register(&OpDef{Name: "pad_cols", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "start", Kind: AttrInt, Required: true}, {Name: "width", Kind: AttrInt, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			y, s, w := args[0], a.Int("start", -1), a.Int("width", 0)
			if y.DType != F32 || y.Rank() != 2 || s < 0 || s+y.Shape[1] > w {
				return nil, fmt.Errorf("want y f32[B,c] and start + c <= width, got %s, start %d, width %d", y, s, w)
			}
			return []Type{Tensor(F32, y.Shape[0], w)}, nil
		}, Doc: "zeros [B,width] with y in columns start..start+c (the gradient of slice_cols)"})
	Register(&OpDef{Name: "sum_all", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			if args[0].DType != F32 {
				return nil, fmt.Errorf("want a f32 tensor, got %s", args[0])
			}
			return []Type{Scalar(F32)}, nil
		}, Doc: "the sum of every element (a scalar objective of a tensor)"})
	Register(&OpDef{Name: "broadcast_scalar", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "shape", Kind: AttrInts, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeScalar("the value", args[0]); err != nil {
				return nil, err
			}
			return []Type{{DType: F32, Shape: Shape(append([]int{}, a.Ints("shape")...))}}, nil
		}, Doc: "a tensor of the given shape filled with the scalar (the gradient of sum_all)"})
	Register(&OpDef{Name: "mixture_nll", MinArgs: 5, MaxArgs: 5, Results: 1, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			return []Type{Scalar(F32)}, seqMixture(args)
		}, Doc: "(G[B,E], μ[B,E], log σ²[E], y f32[B,1], mask i32[B]) -> mean over rows with mask >= 0 of −log Σ_e G_e·N(y; μ_e, σ_e²)"})
	Register(&OpDef{Name: "mixture_nll_grad", MinArgs: 6, MaxArgs: 6, Results: 3, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			if err := moeScalar("dloss", args[0]); err != nil {
				return nil, err
			}
			return []Type{args[1], args[2], args[3]}, seqMixture(args[1:])
		}, Doc: "(dloss, G, μ, log σ², y, mask) -> (dG, dμ, dlog σ²); none flows to the data y"})
}

func seqNormArgs(x, g, b Type) error {
	if x.DType != F32 || x.Rank() != 2 || !g.Equal(Tensor(F32, x.Shape[1])) || !b.Equal(g) {
		return fmt.Errorf("want x f32[N,D], γ and β f32[D], got %s, %s, %s", x, g, b)
	}
	return nil
}

func seqAttention(args []Type, a Attrs) error {
	q := args[0]
	h, t := a.Int("heads", 0), a.Int("seq", 0)
	if q.DType != F32 || q.Rank() != 2 || !args[1].Equal(q) || !args[2].Equal(q) {
		return fmt.Errorf("want q, k, v f32[B·T, D] of one shape, got %s, %s, %s", q, args[1], args[2])
	}
	if h < 1 || q.Shape[1]%h != 0 || t < 1 || q.Shape[0]%t != 0 {
		return fmt.Errorf("heads %d must divide D = %d and seq %d must divide the %d rows", h, q.Shape[1], t, q.Shape[0])
	}
	return nil
}

func seqMixture(args []Type) error {
	g, mu, lv, y, mask := args[0], args[1], args[2], args[3], args[4]
	if g.DType != F32 || g.Rank() != 2 || !mu.Equal(g) || !lv.Equal(Tensor(F32, g.Shape[1])) ||
		!y.Equal(Tensor(F32, g.Shape[0], 1)) || !mask.Equal(Tensor(I32, g.Shape[0])) {
		return fmt.Errorf("want G, μ f32[B,E], log σ² f32[E], y f32[B,1], mask i32[B], got %s, %s, %s, %s, %s", g, mu, lv, y, mask)
	}
	return nil
}
