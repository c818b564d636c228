package cpu

import (
	"slices"
	"testing"

	"github.com/expc-dev/expc/ir"
)

// Every MoE kernel against the float64 reference on fresh random inputs.
// Tolerances: routing (token lists, counts, permutations) exact; gate
// weights and the aux loss 1e-5 relative (float32 scores, float64 sums);
// GEMM results 1e-4 of the largest magnitude (float32 accumulation over
// k ≤ 64 terms).

func gateAttrs() []ir.Attrs {
	return []ir.Attrs{
		{"k": 2, "gate": "topk_softmax"},
		{"k": 2, "gate": "softmax_topk"},
		{"k": 3, "gate": "softmax_topk", "renormalize": true, "act": "sigmoid"},
		{"k": 5, "gate": "dense", "act": "tanh"},
		{"k": 1, "gate": "topk_softmax", "act": "relu"},
	}
}

func TestMoEUnfusedKernels(t *testing.T) {
	r := newRand(t)
	const T, E = 300, 5 // more tokens than one routing block
	for _, g := range gateAttrs() {
		h, tau := fv(spread(r, T*E), T, E), fv([]float32{0.7})
		gv := moeCheck(t, "moe_gate", g, []value{h, tau}, 0, 1e-5)[0]
		moeCheck(t, "moe_gate_grad", g, []value{fv(normals(r, T*E, 1), T, E), h, tau}, 1e-6, 1e-4)
		k := g["k"].(int)
		for _, capacity := range []int{T, T * k / E / 2} { // dropless, and drops
			sel := ir.Attrs{"k": k, "act": g["act"], "capacity": capacity}
			if sel["act"] == nil {
				delete(sel, "act")
			}
			for e := 0; e < E; e++ {
				da := sel.Clone()
				da["expert"] = e
				idx := moeCheck(t, "moe_dispatch", da, []value{h}, 0, 0)[0]
				moeCheck(t, "moe_gate_take", ir.Attrs{"expert": e}, []value{gv, idx}, 0, 0)
			}
			moeCheck(t, "moe_stats", sel, []value{h}, 0, 0)
		}
		aux := ir.Attrs{"k": k, "load_balance": 0.3, "z_loss": 0.05}
		if g["act"] != nil {
			aux["act"] = g["act"]
		}
		moeCheck(t, "moe_aux", aux, []value{h, tau}, 0, 1e-5)
		moeCheck(t, "moe_aux_grad", aux, []value{fv([]float32{1.3}), h, tau}, 1e-6, 1e-4)
	}
	idx := make([]int32, 40)
	for i := range idx {
		idx[i] = int32(r.IntN(31)) - 1 // some −1, some repeated
	}
	x := fv(normals(r, 30*7, 1), 30, 7)
	moeCheck(t, "moe_gather", nil, []value{x, iv(idx, 40)}, 0, 0)
	moeCheck(t, "moe_scatter", ir.Attrs{"rows": 30}, []value{fv(normals(r, 40*7, 1), 40, 7), iv(idx, 40)}, 1e-6, 1e-6)
	moeCheck(t, "moe_gate_put", ir.Attrs{"expert": 2, "rows": 30, "experts": 4}, []value{fv(normals(r, 40, 1), 40), iv(idx, 40)}, 1e-6, 1e-6)
	moeCheck(t, "moe_scale_rows", nil, []value{fv(normals(r, 40*7, 1), 40, 7), fv(normals(r, 40, 1), 40)}, 0, 1e-6)
	moeCheck(t, "moe_row_dot", nil, []value{fv(normals(r, 40*7, 1), 40, 7), fv(normals(r, 40*7, 1), 40, 7)}, 1e-6, 1e-6)
	for _, kind := range []string{"constant", "linear", "cosine", "exponential"} {
		for _, step := range []int32{0, 37, 100, 1000} {
			moeCheck(t, "anneal", ir.Attrs{"kind": kind, "start": 2.0, "end": 0.25, "steps": 100}, []value{iv([]int32{step})}, 0, 1e-6)
		}
	}
}

// TestMoEFusedKernels checks moe_route, moe_ffn, moe_combine and their
// gradients, chained the way the fused plan chains them.
func TestMoEFusedKernels(t *testing.T) {
	// Both ways of spreading the experts over the workers, with small row
	// tasks so that experts span several.
	defer func(f, c int) { moeForceParallel, moeChunkRows = f, c }(moeForceParallel, moeChunkRows)
	moeChunkRows = 50
	for _, force := range []int{1, -1} {
		moeForceParallel = force
		testMoEFusedKernels(t)
	}
}

func testMoEFusedKernels(t *testing.T) {
	r := newRand(t)
	const T, E, d, H = 300, 4, 24, 40
	for _, g := range gateAttrs()[:3] {
		for _, act := range []string{"relu", "gelu"} {
			k := min(g["k"].(int), E)
			for _, capacity := range []int{T, T * k / E / 2} {
				ra := g.Clone()
				ra["k"], ra["capacity"], ra["load_balance"], ra["z_loss"], ra["aux"] = k, capacity, 0.2, 0.01, true
				h, tau := fv(spread(r, T*E), T, E), fv([]float32{1.3})
				rin := []value{h, tau}
				route := moeCheck(t, "moe_route", ra, rin, 1e-7, 1e-5)
				checkConservation(t, route, T, E, k, capacity)
				perm, off, w, ts := route[0], route[1], route[2], route[3]
				x := fv(normals(r, T*d, 1), T, d)
				weights := []value{}
				for _, shape := range [][]int{{d, H}, {H}, {H, d}, {d}} {
					for range E {
						n := 1
						for _, s := range shape {
							n *= s
						}
						weights = append(weights, fv(normals(r, n, 0.3), shape...))
					}
				}
				fa := ir.Attrs{"experts": E, "act": act}
				ffn := moeCheck(t, "moe_ffn", fa, append([]value{x, perm, off}, weights...), 1e-4, 1e-4)
				y := ffn[len(ffn)-1]
				moeCheck(t, "moe_combine", nil, []value{y, ts, w}, 1e-5, 1e-5)
				dy := fv(normals(r, T*d, 1), T, d)
				cg := moeCheck(t, "moe_combine_grad", nil, []value{dy, y, w, perm}, 1e-5, 1e-5)
				gin := []value{cg[0], ffn[0]}
				gin = append(gin, ffn[1:len(ffn)-1]...)
				gin = append(gin, off)
				gin = append(gin, weights[:E]...)
				gin = append(gin, weights[2*E:3*E]...)
				ga := fa.Clone()
				ga["dx"] = true
				grads := moeCheck(t, "moe_ffn_grad", ga, gin, 1e-4, 1e-4)
				moeCheck(t, "moe_combine", nil, []value{grads[0], ts}, 1e-5, 1e-5)
				for _, daux := range []bool{false, true} {
					in := []value{cg[1], h, tau, perm, ts}
					rg := ra.Clone()
					rg["aux"] = daux
					if daux {
						in = append(in, fv([]float32{0.9}))
					}
					moeCheck(t, "moe_route_grad", rg, in, 1e-6, 1e-4)
				}
			}
		}
	}
}

// checkConservation: every choice is either kept (exactly once, in one
// expert's slots, in priority order) or counted as dropped.
func checkConservation(t *testing.T, route []value, T, E, k, capacity int) {
	t.Helper()
	perm, off, ts, load, dropped := route[0].i, route[1].i, route[3].i, route[4].f, route[5].f
	var total float32
	for _, n := range load {
		total += n
	}
	if int(total) != T*k {
		t.Fatalf("load sums to %v, want T·k = %d", total, T*k)
	}
	kept := int(off[E])
	if kept+int(dropped[0]) != T*k {
		t.Fatalf("%d kept + %v dropped != %d choices", kept, dropped[0], T*k)
	}
	seen := map[int32]int{}
	for e := 0; e < E; e++ {
		n := int(off[e+1] - off[e])
		if n > capacity || n != min(int(load[e]), capacity) {
			t.Fatalf("expert %d keeps %d tokens: load %v, capacity %d", e, n, load[e], capacity)
		}
		for s := off[e]; s < off[e+1]; s++ {
			seen[perm[s]]++
		}
	}
	for s := kept; s < len(perm); s++ {
		if perm[s] != -1 {
			t.Fatalf("unused slot %d holds token %d", s, perm[s])
		}
	}
	for tok := 0; tok < T; tok++ {
		n := 0
		for j := 0; j < k; j++ {
			if s := ts[tok*k+j]; s >= 0 {
				n++
				if perm[s] != int32(tok) {
					t.Fatalf("token %d's slot %d holds token %d", tok, s, perm[s])
				}
			}
		}
		if n != seen[int32(tok)] {
			t.Fatalf("token %d: %d slots listed, %d in the permutation", tok, n, seen[int32(tok)])
		}
	}
}

// TestMoETopKTies: with many equal scores the selection is exactly the k
// largest, ties to the lower expert, and the fused and unfused routings
// agree token for token.
func TestMoETopKTies(t *testing.T) {
	r := newRand(t)
	const T, E = 257, 6
	for _, k := range []int{1, 2, 3, 6} {
		h := make([]float32, T*E)
		for i := range h {
			h[i] = float32(r.IntN(3)) // 0, 1, 2: ties everywhere
		}
		capacity := T * k / E * 3 / 4
		hv := fv(h, T, E)
		ra := ir.Attrs{"k": k, "gate": "topk_softmax", "capacity": capacity}
		for _, be := range testPools {
			route := moeRun(t, be, "moe_route", ra, []value{hv, fv([]float32{1})})
			checkConservation(t, route, T, E, k, capacity)
			for e := 0; e < E; e++ {
				idx := moeRun(t, be, "moe_dispatch", ir.Attrs{"k": k, "expert": e, "capacity": capacity}, []value{hv})[0].i
				perm, off := route[0].i, route[1].i
				want := slices.Clone(perm[off[e]:off[e+1]])
				for len(want) < capacity {
					want = append(want, -1)
				}
				if !slices.Equal(idx, want) {
					t.Fatalf("k=%d expert %d: dispatch %v, route %v", k, e, idx, want)
				}
			}
			// Brute force: token t picks e over e' when h is larger, or
			// equal and e < e'.
			ts := route[3].i
			for tok := 0; tok < T; tok++ {
				row := h[tok*E : (tok+1)*E]
				order := []int{0, 1, 2, 3, 4, 5}
				slices.SortStableFunc(order, func(a, b int) int {
					switch {
					case row[a] > row[b]:
						return -1
					case row[a] < row[b]:
						return 1
					}
					return 0
				})
				want := slices.Clone(order[:k])
				slices.Sort(want)
				var got []int // the experts with a non-zero weight
				g := moeRun(t, be, "moe_gate", ir.Attrs{"k": k, "gate": "topk_softmax"}, []value{fv(row, 1, E), fv([]float32{1})})[0].f
				for e, v := range g {
					if v != 0 {
						got = append(got, e)
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("k=%d token %d scores %v: selected %v, want %v", k, tok, row, got, want)
				}
				for j := 0; j < k; j++ {
					if s := ts[tok*k+j]; s >= 0 && route[0].i[s] != int32(tok) {
						t.Fatalf("token %d slot %d", tok, s)
					}
				}
			}
		}
	}
}

func TestSeqKernels(t *testing.T) {
	r := newRand(t)
	const B, T, V, D = 5, 7, 11, 12
	x := make([]float32, B*(T+1))
	for i := range x {
		x[i] = float32(r.IntN(V))
	}
	mask := []int32{0, 3, -1, 1, 2}
	xv, mv := fv(x, B, T+1), iv(mask, B)
	ids := moeCheck(t, "token_ids", nil, []value{xv}, 0, 0)[0]
	moeCheck(t, "token_ids", ir.Attrs{"shift": 1}, []value{xv, mv}, 0, 0)
	table, pos := fv(normals(r, V*D, 1), V, D), fv(normals(r, T*D, 1), T, D)
	emb := moeCheck(t, "embed", nil, []value{ids, table, pos}, 0, 1e-6)[0]
	moeCheck(t, "embed_grad", ir.Attrs{"vocab": V, "seq": T}, []value{fv(normals(r, B*T*D, 1), B*T, D), ids}, 1e-6, 1e-5)
	g, bt := fv(normals(r, D, 1), D), fv(normals(r, D, 1), D)
	moeCheck(t, "layer_norm", ir.Attrs{"eps": 1e-5}, []value{emb, g, bt}, 1e-6, 1e-5)
	moeCheck(t, "layer_norm_grad", nil, []value{fv(normals(r, B*T*D, 1), B*T, D), emb, g}, 1e-5, 1e-4)
	q, k, v := fv(normals(r, B*T*D, 1), B*T, D), fv(normals(r, B*T*D, 1), B*T, D), fv(normals(r, B*T*D, 1), B*T, D)
	for _, causal := range []bool{false, true} {
		a := ir.Attrs{"heads": 3, "seq": T, "causal": causal}
		moeCheck(t, "attention", a, []value{q, k, v}, 1e-6, 1e-5)
		moeCheck(t, "attention_grad", a, []value{fv(normals(r, B*T*D, 1), B*T, D), q, k, v}, 1e-5, 1e-4)
	}
	moeCheck(t, "slice_cols", ir.Attrs{"start": 2, "end": 5}, []value{xv}, 0, 0)
	moeCheck(t, "pad_cols", ir.Attrs{"start": 1, "width": 9}, []value{fv(normals(r, B*3, 1), B, 3)}, 0, 0)
	moeCheck(t, "sum_all", nil, []value{fv(normals(r, 70001, 1), 70001)}, 1e-6, 1e-5)
	moeCheck(t, "broadcast_scalar", ir.Attrs{"shape": []int{3, 5}}, []value{fv([]float32{1.5})}, 0, 0)
	G := fv(uniforms(r, B*4, 0.05, 1), B, 4)
	G.f[1] = 0 // a gate that keeps some experts off
	mu, lv, y := fv(normals(r, B*4, 1), B, 4), fv(normals(r, 4, 0.5), 4), fv(normals(r, B, 1), B, 1)
	moeCheck(t, "mixture_nll", nil, []value{G, mu, lv, y, mv}, 0, 1e-5)
	moeCheck(t, "mixture_nll_grad", nil, []value{fv([]float32{0.7}), G, mu, lv, y, mv}, 1e-6, 1e-4)
}
