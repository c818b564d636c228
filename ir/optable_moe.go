package ir

import "fmt"

// Ops of sparse mixture-of-experts layers. The compiler emits the
// straightforward, unfused graph of one layer with T tokens, E experts,
// top-k routing and a per-expert capacity C (C = T when dropless):
//
//	s      = router logits h[T,E]
//	G      = moe_gate(h, τ)                    routing weights, zero off the top-k
//	idx_e  = moe_dispatch(h) {expert=e}        the tokens of expert e, i32[C] (-1 pads)
//	x_e    = moe_gather(x, idx_e)              [C,d]
//	y_e    = FFN_e(x_e)                        matmul, bias_add, act, matmul, bias_add
//	g_e    = moe_gate_take(G, idx_e)           [C]
//	y      = Σ_e moe_scatter(moe_scale_rows(y_e, g_e), idx_e)
//	aux    = moe_aux(h, τ)                     load-balancing and router z-loss
//	load, dropped = moe_stats(h)               metrics
//
// and the pass fuse-moe-gating turns it, with its backward, into
// moe_route (one gating kernel), moe_ffn (one grouped GEMM over the permuted
// tokens, no padding), moe_combine, and their gradients.
//
// Routing is the same function everywhere: the selected experts of a token
// are the k largest act(h) (τ > 0 does not change the order), ties going to
// the lower expert index; expert e takes its tokens in priority order
// (choice rank, then token index) up to its capacity, the rest are dropped.

// MoEGates are the values of the gate attribute: topk_softmax (softmax over
// the kept scores), softmax_topk (softmax over all experts, then keep the
// top k; renormalize divides by their sum) and dense (every expert, k = E).
var MoEGates = []string{"topk_softmax", "softmax_topk", "dense"}

// MoERouterActs are the activations a router may apply before the softmax.
var MoERouterActs = append([]string{"none"}, Activations...)

func moeSelAttrs(extra ...AttrDef) []AttrDef {
	return append([]AttrDef{
		{Name: "k", Kind: AttrInt, Required: true},
		{Name: "act", Kind: AttrString, OneOf: MoERouterActs},
	}, extra...)
}

// MoEGateAttrs are the attributes of moe_gate and moe_gate_grad.
var MoEGateAttrs = moeSelAttrs(
	AttrDef{Name: "gate", Kind: AttrString, Required: true, OneOf: MoEGates},
	AttrDef{Name: "renormalize", Kind: AttrBool})

// MoEAuxAttrs are the attributes of moe_aux and moe_aux_grad.
var MoEAuxAttrs = moeSelAttrs(
	AttrDef{Name: "load_balance", Kind: AttrFloat}, AttrDef{Name: "z_loss", Kind: AttrFloat})

// MoERouteAttrs are the attributes of the fused moe_route and moe_route_grad.
// aux says whether the auxiliary loss is part of the objective (then
// moe_route_grad takes its incoming gradient as a last operand).
var MoERouteAttrs = moeSelAttrs(
	AttrDef{Name: "gate", Kind: AttrString, Required: true, OneOf: MoEGates},
	AttrDef{Name: "renormalize", Kind: AttrBool},
	AttrDef{Name: "capacity", Kind: AttrInt, Required: true},
	AttrDef{Name: "load_balance", Kind: AttrFloat}, AttrDef{Name: "z_loss", Kind: AttrFloat},
	AttrDef{Name: "aux", Kind: AttrBool})

// MoEFFNAttrs are the attributes of moe_ffn and moe_ffn_grad.
var MoEFFNAttrs = []AttrDef{
	{Name: "experts", Kind: AttrInt, Required: true},
	{Name: "act", Kind: AttrString, Required: true, OneOf: Activations},
	{Name: "dx", Kind: AttrBool}, // moe_ffn_grad: also compute the gradient of the permuted input
}

func init() {
	Register(&OpDef{Name: "moe_gate", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true, Attrs: MoEGateAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeLogits(args[0], a); err != nil {
				return nil, err
			}
			return []Type{args[0]}, moeScalar("temperature", args[1])
		}, Doc: "(h[T,E], τ) -> routing weights G[T,E]: the gate over act(h)/τ, zero outside each token's top k"})
	Register(&OpDef{Name: "moe_gate_grad", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true, Attrs: MoEGateAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeLogits(args[1], a); err != nil {
				return nil, err
			}
			if !args[0].Equal(args[1]) {
				return nil, fmt.Errorf("dG %s does not match the logits %s", args[0], args[1])
			}
			return []Type{args[1]}, moeScalar("temperature", args[2])
		}, Doc: "(dG, h, τ) -> dh: the gradient of moe_gate (none flows to τ, a schedule)"})
	Register(&OpDef{Name: "moe_dispatch", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: moeSelAttrs(AttrDef{Name: "expert", Kind: AttrInt, Required: true}, AttrDef{Name: "capacity", Kind: AttrInt, Required: true}),
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeLogits(args[0], a); err != nil {
				return nil, err
			}
			if e := a.Int("expert", -1); e < 0 || e >= args[0].Shape[1] {
				return nil, fmt.Errorf("expert %d out of range for %d experts", e, args[0].Shape[1])
			}
			c, err := moeCapacity(args[0], a)
			return []Type{Tensor(I32, c)}, err
		}, Doc: "h[T,E] -> i32[capacity]: the tokens routed to one expert in priority order (choice rank, token), -1 after the last"})
	Register(&OpDef{Name: "moe_stats", MinArgs: 1, MaxArgs: 1, Results: 2, Pure: true,
		Attrs: moeSelAttrs(AttrDef{Name: "capacity", Kind: AttrInt, Required: true}),
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeLogits(args[0], a); err != nil {
				return nil, err
			}
			_, err := moeCapacity(args[0], a)
			return []Type{Tensor(F32, args[0].Shape[1]), Scalar(F32)}, err
		}, Doc: "h[T,E] -> (load f32[E], dropped): token choices per expert before capacity, and choices dropped by it"})
	Register(&OpDef{Name: "moe_aux", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true, Attrs: MoEAuxAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeLogits(args[0], a); err != nil {
				return nil, err
			}
			return []Type{Scalar(F32)}, moeScalar("temperature", args[1])
		}, Doc: "(h, τ) -> load_balance·E·Σ_e f_e·P_e + z_loss·mean_t logsumexp(h_t)² (f: share of top-k choices, P: mean softmax(act(h)/τ))"})
	Register(&OpDef{Name: "moe_aux_grad", MinArgs: 3, MaxArgs: 3, Results: 1, Pure: true, Attrs: MoEAuxAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			if err := moeScalar("dloss", args[0]); err != nil {
				return nil, err
			}
			if err := moeLogits(args[1], a); err != nil {
				return nil, err
			}
			return []Type{args[1]}, moeScalar("temperature", args[2])
		}, Doc: "(daux, h, τ) -> dh: the gradient of moe_aux"})
	Register(&OpDef{Name: "moe_gather", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			x, idx := args[0], args[1]
			if x.DType != F32 || x.Rank() != 2 || !moeIndex(idx) {
				return nil, fmt.Errorf("want x f32[T,d] and idx i32[C], got %s and %s", x, idx)
			}
			return []Type{Tensor(F32, idx.Shape[0], x.Shape[1])}, nil
		}, Doc: "(x[T,d], idx i32[C]) -> rows x[idx[i]], zero where idx[i] < 0"})
	Register(&OpDef{Name: "moe_scatter", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "rows", Kind: AttrInt, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			y, idx := args[0], args[1]
			if y.DType != F32 || y.Rank() != 2 || !moeIndex(idx) || idx.Shape[0] != y.Shape[0] || a.Int("rows", 0) < 1 {
				return nil, fmt.Errorf("want y f32[C,d], idx i32[C] and rows >= 1, got %s, %s and rows = %d", y, idx, a.Int("rows", 0))
			}
			return []Type{Tensor(F32, a.Int("rows", 0), y.Shape[1])}, nil
		}, Doc: "(y[C,d], idx i32[C]) -> out[rows,d], out[t] = Σ_{i: idx[i]=t} y[i] (negative indices dropped)"})
	Register(&OpDef{Name: "moe_gate_take", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "expert", Kind: AttrInt, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			g, idx := args[0], args[1]
			if g.DType != F32 || g.Rank() != 2 || !moeIndex(idx) {
				return nil, fmt.Errorf("want G f32[T,E] and idx i32[C], got %s and %s", g, idx)
			}
			if e := a.Int("expert", -1); e < 0 || e >= g.Shape[1] {
				return nil, fmt.Errorf("expert %d out of range for %s", e, g)
			}
			return []Type{Tensor(F32, idx.Shape[0])}, nil
		}, Doc: "(G[T,E], idx i32[C]) -> G[idx[i], expert], zero where idx[i] < 0"})
	Register(&OpDef{Name: "moe_gate_put", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Attrs: []AttrDef{{Name: "expert", Kind: AttrInt, Required: true}, {Name: "rows", Kind: AttrInt, Required: true}, {Name: "experts", Kind: AttrInt, Required: true}},
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			v, idx := args[0], args[1]
			rows, experts, e := a.Int("rows", 0), a.Int("experts", 0), a.Int("expert", -1)
			if v.DType != F32 || v.Rank() != 1 || !moeIndex(idx) || idx.Shape[0] != v.Shape[0] || rows < 1 || e < 0 || e >= experts {
				return nil, fmt.Errorf("want v f32[C], idx i32[C], rows >= 1 and 0 <= expert < experts, got %s, %s, rows = %d, expert %d of %d", v, idx, rows, e, experts)
			}
			return []Type{Tensor(F32, rows, experts)}, nil
		}, Doc: "(v[C], idx i32[C]) -> out[rows,experts], zero except out[idx[i], expert] += v[i]"})
	Register(&OpDef{Name: "moe_scale_rows", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			y, w := args[0], args[1]
			if y.DType != F32 || y.Rank() != 2 || w.DType != F32 || w.Rank() != 1 || w.Shape[0] != y.Shape[0] {
				return nil, fmt.Errorf("want y f32[C,d] and w f32[C], got %s and %s", y, w)
			}
			return []Type{y}, nil
		}, Doc: "(y[C,d], w[C]) -> y[i,j]·w[i]"})
	Register(&OpDef{Name: "moe_row_dot", MinArgs: 2, MaxArgs: 2, Results: 1, Pure: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			a, b := args[0], args[1]
			if a.DType != F32 || a.Rank() != 2 || !a.Equal(b) {
				return nil, fmt.Errorf("want two equal f32[C,d], got %s and %s", a, b)
			}
			return []Type{Tensor(F32, a.Shape[0])}, nil
		}, Doc: "(a[C,d], b[C,d]) -> Σ_j a[i,j]·b[i,j]"})
	Register(&OpDef{Name: "anneal", MinArgs: 1, MaxArgs: 1, Results: 1, Pure: true,
		Attrs: []AttrDef{
			{Name: "kind", Kind: AttrString, Required: true, OneOf: []string{"constant", "linear", "cosine", "exponential"}},
			{Name: "start", Kind: AttrFloat, Required: true}, {Name: "end", Kind: AttrFloat}, {Name: "steps", Kind: AttrInt},
		},
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			if !args[0].Equal(Scalar(I32)) {
				return nil, fmt.Errorf("step must be an i32 scalar, got %s", args[0])
			}
			return []Type{Scalar(F32)}, nil
		}, Doc: "a scalar knob at a step: start, moving to end over steps (linearly, by a half cosine or geometrically), then end"})

	// Fused ops, created by fuse-moe-gating.
	Register(&OpDef{Name: "moe_route", MinArgs: 2, MaxArgs: 2, Results: 7, Pure: true, Fused: true, Attrs: MoERouteAttrs,
		Infer: inferMoERoute,
		Doc: "(h[T,E], τ) -> (perm i32[S], offsets i32[E+1], slot weights f32[S], token slots i32[T,k], load f32[E], dropped, aux): " +
			"top-k with the deterministic tie-break, gate weights, per-expert counts and offsets, the token permutation and the auxiliary loss in one pass"})
	Register(&OpDef{Name: "moe_route_grad", MinArgs: 5, MaxArgs: 6, Results: 1, Pure: true, Fused: true, Attrs: MoERouteAttrs,
		Infer: func(args []Type, a Attrs) ([]Type, error) {
			rt, err := inferMoERoute(args[1:3], a)
			if err != nil {
				return nil, err
			}
			if !args[0].Equal(rt[2]) || !args[3].Equal(rt[0]) || !args[4].Equal(rt[3]) {
				return nil, fmt.Errorf("want (dw %s, h, τ, perm %s, token slots %s), got %s, %s, %s", rt[2], rt[0], rt[3], args[0], args[3], args[4])
			}
			if a.Bool("aux", false) != (len(args) == 6) {
				return nil, fmt.Errorf("the aux loss gradient is an operand exactly when aux is set")
			}
			if len(args) == 6 {
				if err := moeScalar("daux", args[5]); err != nil {
					return nil, err
				}
			}
			return []Type{args[1]}, nil
		}, Doc: "(dw[S], h, τ, perm, token slots, [daux]) -> dh: the gate's and the auxiliary loss's gradient in one pass"})
	Register(&OpDef{Name: "moe_ffn", MinArgs: 7, MaxArgs: -1, Results: -1, Pure: true, Fused: true, Attrs: MoEFFNAttrs,
		Infer: inferMoEFFN,
		Doc: "(x[T,d], perm i32[S], offsets i32[E+1], W1_e[d,H]…, b1_e[H]…, W2_e[H,d]…, b2_e[d]…) -> (xp[S,d], [z[S,H] unless relu], a[S,H], y[S,d]): " +
			"the permuted tokens through every expert's FFN as one grouped GEMM, no padding"})
	Register(&OpDef{Name: "moe_ffn_grad", MinArgs: 6, MaxArgs: -1, Results: -1, Pure: true, Fused: true, Attrs: MoEFFNAttrs,
		Infer: inferMoEFFNGrad,
		Doc:   "(dy[S,d], xp, [z], a, offsets, W1_e…, W2_e…) -> ([dxp[S,d]], dz[S,H], dW1_e…, db1_e…, dW2_e…, db2_e…): the grouped backward GEMMs"})
	Register(&OpDef{Name: "moe_combine", MinArgs: 2, MaxArgs: 3, Results: 1, Pure: true, Fused: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			y, ts := args[0], args[1]
			if y.DType != F32 || y.Rank() != 2 || ts.DType != I32 || ts.Rank() != 2 {
				return nil, fmt.Errorf("want y f32[S,d] and token slots i32[T,k], got %s and %s", y, ts)
			}
			if len(args) == 3 && !args[2].Equal(Tensor(F32, y.Shape[0])) {
				return nil, fmt.Errorf("slot weights %s do not match %s", args[2], y)
			}
			return []Type{Tensor(F32, ts.Shape[0], y.Shape[1])}, nil
		}, Doc: "(y[S,d], token slots i32[T,k], [w[S]]) -> out[t] = Σ_j w[s]·y[s] over the slots s of token t, in expert order"})
	Register(&OpDef{Name: "moe_combine_grad", MinArgs: 4, MaxArgs: 4, Results: 2, Pure: true, Fused: true,
		Infer: func(args []Type, _ Attrs) ([]Type, error) {
			dy, y, w, perm := args[0], args[1], args[2], args[3]
			if dy.DType != F32 || dy.Rank() != 2 || y.DType != F32 || y.Rank() != 2 || y.Shape[1] != dy.Shape[1] ||
				!w.Equal(Tensor(F32, y.Shape[0])) || !perm.Equal(Tensor(I32, y.Shape[0])) {
				return nil, fmt.Errorf("want dy f32[T,d], y f32[S,d], w f32[S], perm i32[S], got %s, %s, %s, %s", dy, y, w, perm)
			}
			return []Type{y, w}, nil
		}, Doc: "(dy[T,d], y[S,d], w[S], perm) -> (dy_s = w[s]·dy[perm[s]], dw[s] = dy[perm[s]]·y[s])"})
}

func moeLogits(h Type, a Attrs) error {
	if h.DType != F32 || h.Rank() != 2 || h.Shape[1] < 1 {
		return fmt.Errorf("want router logits f32[T,E], got %s", h)
	}
	if k := a.Int("k", 0); k < 1 || k > h.Shape[1] {
		return fmt.Errorf("k = %d must be in [1, %d] for %s", k, h.Shape[1], h)
	}
	return nil
}

func moeCapacity(h Type, a Attrs) (int, error) {
	c := a.Int("capacity", 0)
	if c < 1 {
		return 0, fmt.Errorf("capacity %d must be at least 1", c)
	}
	return c, nil
}

func moeScalar(what string, t Type) error {
	if !t.Equal(Scalar(F32)) {
		return fmt.Errorf("%s must be a f32 scalar, got %s", what, t)
	}
	return nil
}

func moeIndex(t Type) bool { return t.DType == I32 && t.Rank() == 1 }

// MoESlots is the number of routing slots of T tokens, top-k and per-expert
// capacity C over E experts: every choice that can survive the capacity.
func MoESlots(tokens, experts, k, capacity int) int {
	return min(tokens*k, experts*capacity)
}

func inferMoERoute(args []Type, a Attrs) ([]Type, error) {
	h := args[0]
	if err := moeLogits(h, a); err != nil {
		return nil, err
	}
	c, err := moeCapacity(h, a)
	if err != nil {
		return nil, err
	}
	if err := moeScalar("temperature", args[1]); err != nil {
		return nil, err
	}
	t, e, k := h.Shape[0], h.Shape[1], a.Int("k", 0)
	s := MoESlots(t, e, k, c)
	return []Type{Tensor(I32, s), Tensor(I32, e+1), Tensor(F32, s), Tensor(I32, t, k),
		Tensor(F32, e), Scalar(F32), Scalar(F32)}, nil
}

// MoEFFNKeepsPre reports whether moe_ffn keeps the pre-activation for the
// backward: relu's derivative can be read off its output.
func MoEFFNKeepsPre(act string) bool { return act != "relu" }

// moeExpertWeights checks the 4E weight operands W1_e[d,H]…, b1_e[H]…,
// W2_e[H,d]…, b2_e[d]… and returns d and H.
func moeExpertWeights(ws []Type, experts int) (d, h int, err error) {
	const groups = 4
	if len(ws) != groups*experts {
		return 0, 0, fmt.Errorf("want %d expert weights for %d experts, got %d", groups*experts, experts, len(ws))
	}
	w1 := ws[0]
	if w1.DType != F32 || w1.Rank() != 2 {
		return 0, 0, fmt.Errorf("W1 must be f32[d,H], got %s", w1)
	}
	d, h = w1.Shape[0], w1.Shape[1]
	for e := 0; e < experts; e++ {
		want := []Type{Tensor(F32, d, h), Tensor(F32, h), Tensor(F32, h, d), Tensor(F32, d)}
		for g := 0; g < groups; g++ {
			if got := ws[g*experts+e]; !got.Equal(want[g]) {
				return 0, 0, fmt.Errorf("expert %d: weight %d is %s, want %s", e, g, got, want[g])
			}
		}
	}
	return d, h, nil
}

func inferMoEFFN(args []Type, a Attrs) ([]Type, error) {
	experts := a.Int("experts", 0)
	if experts < 1 {
		return nil, fmt.Errorf("experts = %d must be at least 1", experts)
	}
	x, perm, off := args[0], args[1], args[2]
	if x.DType != F32 || x.Rank() != 2 || !moeIndex(perm) || !off.Equal(Tensor(I32, experts+1)) {
		return nil, fmt.Errorf("want x f32[T,d], perm i32[S], offsets i32[%d], got %s, %s, %s", experts+1, x, perm, off)
	}
	d, h, err := moeExpertWeights(args[3:], experts)
	if err != nil {
		return nil, err
	}
	if d != x.Shape[1] {
		return nil, fmt.Errorf("x %s does not match the experts' input width %d", x, d)
	}
	s := perm.Shape[0]
	out := []Type{Tensor(F32, s, d)}
	if MoEFFNKeepsPre(a.Str("act", "")) {
		out = append(out, Tensor(F32, s, h))
	}
	return append(out, Tensor(F32, s, h), Tensor(F32, s, d)), nil
}

func inferMoEFFNGrad(args []Type, a Attrs) ([]Type, error) {
	experts := a.Int("experts", 0)
	if experts < 1 {
		return nil, fmt.Errorf("experts = %d must be at least 1", experts)
	}
	pre := MoEFFNKeepsPre(a.Str("act", ""))
	n := 4 // dy, xp, [z], a, offsets
	if pre {
		n++
	}
	if len(args) < n {
		return nil, fmt.Errorf("want %d leading operands, got %d", n, len(args))
	}
	ws := args[n:]
	if len(ws) != 2*experts {
		return nil, fmt.Errorf("want W1_e and W2_e for %d experts (%d operands), got %d", experts, 2*experts, len(ws))
	}
	w1 := ws[0]
	if w1.DType != F32 || w1.Rank() != 2 {
		return nil, fmt.Errorf("W1 must be f32[d,H], got %s", w1)
	}
	d, h := w1.Shape[0], w1.Shape[1]
	for e := 0; e < experts; e++ {
		if !ws[e].Equal(Tensor(F32, d, h)) || !ws[experts+e].Equal(Tensor(F32, h, d)) {
			return nil, fmt.Errorf("expert %d: W1 %s and W2 %s, want [%d,%d] and [%d,%d]", e, ws[e], ws[experts+e], d, h, h, d)
		}
	}
	dy := args[0]
	if dy.DType != F32 || dy.Rank() != 2 || dy.Shape[1] != d {
		return nil, fmt.Errorf("dy must be f32[S,%d], got %s", d, dy)
	}
	s := dy.Shape[0]
	want := []Type{Tensor(F32, s, d), Tensor(F32, s, d)}
	if pre {
		want = append(want, Tensor(F32, s, h))
	}
	want = append(want, Tensor(F32, s, h), Tensor(I32, experts+1))
	for i, w := range want {
		if !args[i].Equal(w) {
			return nil, fmt.Errorf("operand %d is %s, want %s", i, args[i], w)
		}
	}
	var out []Type
	if a.Bool("dx", false) {
		out = append(out, Tensor(F32, s, d))
	}
	out = append(out, Tensor(F32, s, h))
	for _, t := range []Type{Tensor(F32, d, h), Tensor(F32, h), Tensor(F32, h, d), Tensor(F32, d)} {
		for e := 0; e < experts; e++ {
			out = append(out, t)
		}
	}
	return out, nil
}
