package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Routing of mixture-of-experts layers (ir/optable_moe.go): moe_gate,
// moe_dispatch, moe_stats, moe_aux (and gradients) and the fused moe_route
// and moe_route_grad, with backends/cpu/moe_route.go's rule so that every
// kernel selects the same experts:
//
//   - one thread per token picks its k largest act(h) in float32, ties to
//     the lower index, into a scratch selection [T·k];
//   - gate weights, softmaxes and their gradients are computed in float64
//     as on the CPU, except exp, which goes through float32 (no float64 exp
//     without libdevice), so results may differ in the last float32 bits;
//   - counts are one thread per expert (integers, any order); the
//     capacity assignment walks the priority order (choice rank, then
//     token) with one thread per expert, which only needs its own fill;
//   - the auxiliary loss sums 128-token blocks (one thread each, tokens in
//     order) and then the blocks in order on one thread: the CPU's order.
//
// Gate kinds: topk_softmax, softmax_topk with renormalize and dense are a
// softmax over the selected experts (ALL = 0); softmax_topk is a softmax
// over every expert restricted to the selection (ALL = 1).
func init() {
	addFamily("moe_route", []string{"math"}, `EX_DEV double ex_moe_exp(double x) { return (double)ex_expf((float)x); }

template <int ACT> EX_DEV void ex_moe_pick(const float* row, i64 E, i64 K, i32* sel) {
  for (i64 j = 0; j < K; j++) {
    i64 best = -1;
    float bv = 0.0f;
    for (i64 e = 0; e < E; e++) {
      const float v = ex_act<ACT>(row[e]);
      if (best >= 0 && !(v > bv)) continue;
      bool taken = false;
      for (i64 q = 0; q < j; q++) if (sel[q] == e) taken = true;
      if (!taken) { best = e; bv = v; }
    }
    sel[j] = (i32)best;
  }
}

// The max and normaliser of softmax(act(h)/τ) over sel (every expert when all).
template <int ACT> EX_DEV void ex_moe_norm(const float* row, i64 E, i64 K, const i32* sel, int all, double tau, double* mx, double* s) {
  const i64 n = all ? E : K;
  double m = ex_ninf_d();
  for (i64 q = 0; q < n; q++) {
    const double v = ex_ddiv((double)ex_act<ACT>(row[all ? q : sel[q]]), tau);
    m = v > m ? v : m;
  }
  double z = 0.0;
  for (i64 q = 0; q < n; q++) z = ex_dadd(z, ex_moe_exp(ex_dsub(ex_ddiv((double)ex_act<ACT>(row[all ? q : sel[q]]), tau), m)));
  *mx = m;
  *s = z;
}

template <int ACT> EX_DEV double ex_moe_prob(float h, double tau, double mx, double s) {
  return ex_ddiv(ex_moe_exp(ex_dsub(ex_ddiv((double)ex_act<ACT>(h), tau), mx)), s);
}

EX_DEV i32 ex_moe_asc_rank(const i32* sel, i64 K, i32 e) {
  i32 n = 0;
  for (i64 q = 0; q < K; q++) if (sel[q] < e) n++;
  return n;
}

// The gradient of token t's gate weights (dg of the selected experts from
// dG[t] when DG is set, else from the slot weights' gradient dw via the
// token's slots ts) added to dh.
template <int ACT, int ALL> EX_DEV void ex_moe_gate_grad_tok(const float* row, i64 E, i64 K, const i32* sel, double tau,
    const float* DG, const float* DW, const i32* ts, float* dh) {
  double mx, s;
  ex_moe_norm<ACT>(row, E, K, sel, ALL, tau, &mx, &s);
  double dot = 0.0;
  for (i64 j = 0; j < K; j++) {
    double g;
    if (DG) g = (double)DG[sel[j]];
    else { const i32 sl = ts[ex_moe_asc_rank(sel, K, sel[j])]; g = sl >= 0 ? (double)DW[sl] : 0.0; }
    dot = ex_dadd(dot, ex_dmul(g, ex_moe_prob<ACT>(row[sel[j]], tau, mx, s)));
  }
  for (i64 j = 0; j < (ALL ? E : K); j++) {
    const i64 i = ALL ? j : sel[j];
    double g = 0.0;
    for (i64 q = 0; q < K; q++) {
      if (sel[q] != i) continue;
      if (DG) g = (double)DG[i];
      else { const i32 sl = ts[ex_moe_asc_rank(sel, K, sel[q])]; g = sl >= 0 ? (double)DW[sl] : 0.0; }
    }
    const double p = ex_moe_prob<ACT>(row[i], tau, mx, s);
    dh[i] += (float)ex_dmul(ex_ddiv(ex_dmul(p, ex_dsub(g, dot)), tau), (double)ex_act_grad<ACT>(row[i]));
  }
}

// daux·∂aux/∂h_t added to dh (cnt: the choices per expert).
template <int ACT> EX_DEV void ex_moe_aux_grad_tok(const float* row, i64 T, i64 E, i64 K, const i32* cnt, double tau, double daux, double lb, double zl, float* dh) {
  if (lb != 0.0) {
    double mx, s;
    ex_moe_norm<ACT>(row, E, K, (const i32*)0, 1, tau, &mx, &s);
    const double tk = (double)(T * K);
    double dot = 0.0;
    for (i64 e = 0; e < E; e++) dot = ex_dadd(dot, ex_dmul(ex_ddiv((double)cnt[e], tk), ex_moe_prob<ACT>(row[e], tau, mx, s)));
    const double c = ex_ddiv(ex_ddiv(ex_dmul(ex_dmul(daux, lb), (double)E), (double)T), tau);
    for (i64 i = 0; i < E; i++) {
      const double p = ex_moe_prob<ACT>(row[i], tau, mx, s);
      dh[i] += (float)ex_dmul(ex_dmul(ex_dmul(c, p), ex_dsub(ex_ddiv((double)cnt[i], tk), dot)), (double)ex_act_grad<ACT>(row[i]));
    }
  }
  if (zl != 0.0) {
    double mx = ex_ninf_d();
    for (i64 e = 0; e < E; e++) mx = (double)row[e] > mx ? (double)row[e] : mx;
    double s = 0.0;
    for (i64 e = 0; e < E; e++) s = ex_dadd(s, ex_moe_exp(ex_dsub((double)row[e], mx)));
    const double lse = ex_dadd(mx, ex_log_d(s));
    const double c = ex_ddiv(ex_dmul(ex_dmul(ex_dmul(daux, zl), 2.0), lse), (double)T);
    for (i64 i = 0; i < E; i++) dh[i] += (float)ex_dmul(c, ex_moe_exp(ex_dsub((double)row[i], lse)));
  }
}

// Token t's selection into sel; with W set, also its weights (rank order).
template <int ACT, int ALL> EX_DEV void ex_moe_select_tok(const float* H, const float* TAU, i32* sel, float* W, i64 T, i64 E, i64 K) {
  for (i64 t = ex_gtid(); t < T; t += ex_gstride()) {
    const float* row = H + t * E;
    ex_moe_pick<ACT>(row, E, K, sel + t * K);
    if (!W) continue;
    const double tau = (double)TAU[0];
    double mx, s;
    ex_moe_norm<ACT>(row, E, K, sel + t * K, ALL, tau, &mx, &s);
    for (i64 j = 0; j < K; j++) W[t * K + j] = (float)ex_moe_prob<ACT>(row[sel[t * K + j]], tau, mx, s);
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_moe_counts(const i32* sel, i32* cnt, i64 T, i64 E, i64 K) {
  for (i64 e = ex_gtid(); e < E; e += ex_gstride()) {
    i32 n = 0;
    for (i64 i = 0; i < T * K; i++) if (sel[i] == e) n++;
    cnt[e] = n;
  }
}

// Per 128-token block: P[blk] = Σ_t softmax(act(h_t)/τ), Z[blk] = Σ_t lse(h_t)².
template <int ACT> EX_DEV void ex_moe_aux_blocks_t(const float* H, const float* TAU, double* P, double* Z, i64 T, i64 E, double lb, double zl) {
  const i64 blocks = (T + 127) / 128;
  const double tau = (double)TAU[0];
  for (i64 b = ex_gtid(); b < blocks; b += ex_gstride()) {
    double* pb = P + b * E;
    for (i64 e = 0; e < E; e++) pb[e] = 0.0;
    double z = 0.0;
    for (i64 t = b * 128; t < T && t < (b + 1) * 128; t++) {
      const float* row = H + t * E;
      if (lb != 0.0) {
        double mx, s;
        ex_moe_norm<ACT>(row, E, 0, (const i32*)0, 1, tau, &mx, &s);
        for (i64 e = 0; e < E; e++) pb[e] = ex_dadd(pb[e], ex_moe_prob<ACT>(row[e], tau, mx, s));
      }
      if (zl != 0.0) {
        double mx = ex_ninf_d();
        for (i64 e = 0; e < E; e++) mx = (double)row[e] > mx ? (double)row[e] : mx;
        double s = 0.0;
        for (i64 e = 0; e < E; e++) s = ex_dadd(s, ex_moe_exp(ex_dsub((double)row[e], mx)));
        const double lse = ex_dadd(mx, ex_log_d(s));
        z = ex_dadd(z, ex_dmul(lse, lse));
      }
    }
    Z[b] = z;
  }
}

extern "C" __global__ void __launch_bounds__(1) ex_moe_aux_final(const double* P, const double* Z, const i32* cnt, float* out, i64 T, i64 E, i64 K, double lb, double zl) {
  const i64 blocks = (T + 127) / 128;
  double loss = 0.0;
  if (lb != 0.0) {
    for (i64 e = 0; e < E; e++) {
      double pe = 0.0;
      for (i64 b = 0; b < blocks; b++) pe = ex_dadd(pe, P[b * E + e]);
      const double f = ex_ddiv((double)cnt[e], (double)(T * K));
      loss = ex_dadd(loss, ex_ddiv(ex_dmul(ex_dmul(ex_dmul(lb, (double)E), f), pe), (double)T));
    }
  }
  if (zl != 0.0) {
    double s = 0.0;
    for (i64 b = 0; b < blocks; b++) s = ex_dadd(s, Z[b]);
    loss = ex_dadd(loss, ex_ddiv(ex_dmul(zl, s), (double)T));
  }
  out[0] = (float)loss;
}

extern "C" __global__ void __launch_bounds__(1) ex_moe_dispatch(const i32* sel, i32* out, i64 T, i64 K, i64 C, i32 e) {
  for (i64 i = 0; i < C; i++) out[i] = -1;
  i64 pos = 0;
  for (i64 j = 0; j < K; j++)
    for (i64 t = 0; t < T; t++)
      if (sel[t * K + j] == e && pos < C) out[pos++] = (i32)t;
}

extern "C" __global__ void __launch_bounds__(1) ex_moe_stats(const i32* cnt, float* load, float* dropped, i64 E, i64 C) {
  i32 d = 0;
  for (i64 e = 0; e < E; e++) {
    load[e] = (float)cnt[e];
    d += cnt[e] - (cnt[e] < C ? cnt[e] : (i32)C);
  }
  dropped[0] = (float)d;
}

// The fused route's bookkeeping on one block: offsets, load, dropped; then
// each expert's kept tokens (one thread per expert, priority order) into
// perm and w; then each token's slots in ascending expert order.
extern "C" __global__ void __launch_bounds__(256) ex_moe_route_assign(const i32* sel, const float* wsel, const i32* cnt, i32* slot_of,
    i32* perm, i32* off, float* w, i32* ts, float* load, float* dropped, i64 T, i64 E, i64 K, i64 C, i64 S) {
  const i64 tid = ex_tid_x(), nt = ex_bdim_x();
  if (tid == 0) {
    i32 s = 0, d = 0;
    for (i64 e = 0; e < E; e++) {
      const i32 kept = cnt[e] < C ? cnt[e] : (i32)C;
      off[e] = s;
      s += kept;
      d += cnt[e] - kept;
      load[e] = (float)cnt[e];
    }
    off[E] = s;
    dropped[0] = (float)d;
  }
  for (i64 i = tid; i < T * K; i += nt) slot_of[i] = -1;
  ex_sync();
  for (i64 i = off[E] + tid; i < S; i += nt) { perm[i] = -1; w[i] = 0.0f; }
  for (i64 e = tid; e < E; e += nt) {
    i32 pos = 0;
    for (i64 j = 0; j < K; j++)
      for (i64 t = 0; t < T; t++)
        if (sel[t * K + j] == e && pos < C) {
          const i32 sl = off[e] + pos++;
          perm[sl] = (i32)t;
          w[sl] = wsel[t * K + j];
          slot_of[t * K + j] = sl;
        }
  }
  ex_sync();
  for (i64 t = tid; t < T; t += nt)
    for (i64 j = 0; j < K; j++) ts[t * K + ex_moe_asc_rank(sel + t * K, K, sel[t * K + j])] = slot_of[t * K + j];
}
`)
	for _, op := range []string{"moe_gate", "moe_gate_grad", "moe_dispatch", "moe_stats", "moe_aux", "moe_aux_grad", "moe_route", "moe_route_grad"} {
		register(op, genMoERoute)
	}
}

// moeRouting is what the routing kernels share: sizes and template values.
type moeRouting struct {
	T, E, K, act, all int
	lb, zl            float64
}

func moeRoutingOf(g *gen, h ir.Type) (moeRouting, error) {
	a := g.attrs()
	r := moeRouting{T: h.Shape[0], E: h.Shape[1], K: a.Int("k", 1), lb: a.Float("load_balance", 0), zl: a.Float("z_loss", 0)}
	act, ok := actNumbers[a.Str("act", "none")]
	if !ok {
		return r, fmt.Errorf("unknown router activation %q", a.Str("act", ""))
	}
	r.act = act
	switch gate := a.Str("gate", "topk_softmax"); gate {
	case "topk_softmax", "dense":
	case "softmax_topk":
		if !a.Bool("renormalize", false) {
			r.all = 1
		}
	default:
		return r, fmt.Errorf("unknown gate %q", gate)
	}
	return r, nil
}

// tokenEntry adds an entry point over tokens calling a template of the
// family with (ACT, ALL), and returns its name.
func (g *gen) moeTokenEntry(kind string, r moeRouting, params, body string) (string, error) {
	name := fmt.Sprintf("ex_moe_%s_a%d_g%d", kind, r.act, r.all)
	body = fmt.Sprintf("constexpr int ACT = %d, ALL = %d;\n  (void)ALL;\n  %s", r.act, r.all, body)
	return name, g.entry(name, fmt.Sprintf("extern \"C\" __global__ void __launch_bounds__(256) %s(%s) {\n  %s\n}\n", name, params, body))
}

func genMoERoute(g *gen) error {
	hi := 0
	if g.k.Op == "moe_gate_grad" || g.k.Op == "moe_aux_grad" || g.k.Op == "moe_route_grad" {
		hi = 1
	}
	r, err := moeRoutingOf(g, g.inType(hi))
	if err != nil {
		return err
	}
	g.use("moe_route")
	T, E, K := int64(r.T), int64(r.E), int64(r.K)
	blocks := (T + 127) / 128
	sel := scratchArg(g.reserve(4 * max(T*K, 1)))
	cnt := scratchArg(g.reserve(4 * max(E, 1)))
	tokGrid := dim(streamChoice(max(T, 1)).Int("grid", 1))
	block := dim(blockThreads)
	nullF := Arg{Kind: ArgI64} // a null pointer (0) where a kernel takes none
	h, tau := g.in(hi), nullF  // dispatch and stats take no temperature
	if len(g.k.Ins) > hi+1 {
		tau = g.in(hi + 1)
	}
	selectOnly := func() error {
		name, err := g.moeTokenEntry("select", r, "const float* H, i32* sel, i64 T, i64 E, i64 K",
			"ex_moe_select_tok<ACT, ALL>(H, (const float*)0, sel, (float*)0, T, E, K);")
		if err != nil {
			return err
		}
		g.emit(name, tokGrid, block, h, sel, i64Arg(T), i64Arg(E), i64Arg(K))
		g.emit("ex_moe_counts", dim(1), block, sel, cnt, i64Arg(T), i64Arg(E), i64Arg(K))
		return nil
	}
	aux := func(out Arg) error {
		P := scratchArg(g.reserve(8 * max(blocks*E, 1)))
		Z := scratchArg(g.reserve(8 * max(blocks, 1)))
		if r.lb != 0 || r.zl != 0 {
			name, err := g.moeTokenEntry("aux_blocks", r, "const float* H, const float* TAU, double* P, double* Z, i64 T, i64 E, double lb, double zl",
				"ex_moe_aux_blocks_t<ACT>(H, TAU, P, Z, T, E, lb, zl);")
			if err != nil {
				return err
			}
			g.emit(name, dim(streamChoice(max(blocks, 1)).Int("grid", 1)), block, h, tau, P, Z, i64Arg(T), i64Arg(E), f64Arg(r.lb), f64Arg(r.zl))
		}
		g.emit("ex_moe_aux_final", dim(1), dim(1), P, Z, cnt, out, i64Arg(T), i64Arg(E), i64Arg(K), f64Arg(r.lb), f64Arg(r.zl))
		return nil
	}
	switch g.k.Op {
	case "moe_dispatch":
		if err := selectOnly(); err != nil {
			return err
		}
		C := g.outType(0).Shape[0]
		g.emit("ex_moe_dispatch", dim(1), dim(1), sel, g.out(0), i64Arg(T), i64Arg(K), i64Arg(int64(C)), i32Arg(g.attrs().Int("expert", 0)))
	case "moe_stats":
		if err := selectOnly(); err != nil {
			return err
		}
		g.emit("ex_moe_stats", dim(1), dim(1), cnt, g.out(0), g.out(1), i64Arg(E), i64Arg(int64(g.attrs().Int("capacity", 0))))
	case "moe_aux":
		if err := selectOnly(); err != nil {
			return err
		}
		return aux(g.out(0))
	case "moe_gate":
		name, err := g.moeTokenEntry("gate", r, "const float* H, const float* TAU, i32* sel, float* G, i64 T, i64 E, i64 K",
			`for (i64 t = ex_gtid(); t < T; t += ex_gstride()) {
    const float* row = H + t * E;
    i32* s = sel + t * K;
    ex_moe_pick<ACT>(row, E, K, s);
    const double tau = (double)TAU[0];
    double mx, z;
    ex_moe_norm<ACT>(row, E, K, s, ALL, tau, &mx, &z);
    for (i64 e = 0; e < E; e++) G[t * E + e] = 0.0f;
    for (i64 j = 0; j < K; j++) G[t * E + s[j]] = (float)ex_moe_prob<ACT>(row[s[j]], tau, mx, z);
  }`)
		if err != nil {
			return err
		}
		g.emit(name, tokGrid, block, h, tau, sel, g.out(0), i64Arg(T), i64Arg(E), i64Arg(K))
	case "moe_gate_grad", "moe_aux_grad", "moe_route_grad":
		gate, hasAux := g.k.Op != "moe_aux_grad", g.k.Op == "moe_aux_grad"
		var dG, dW, ts, daux Arg = nullF, nullF, nullF, nullF
		switch g.k.Op {
		case "moe_gate_grad":
			dG = g.in(0)
		case "moe_aux_grad":
			daux = g.in(0)
		case "moe_route_grad":
			dW, ts = g.in(0), g.in(4)
			if len(g.k.Ins) == 6 {
				daux, hasAux = g.in(5), true
			}
		}
		if hasAux {
			if err := selectOnly(); err != nil {
				return err
			}
		}
		name, err := g.moeTokenEntry("grad", r, "const float* DG, const float* DW, const i32* TS, const float* DAUX, const float* H, const float* TAU, "+
			"i32* sel, const i32* cnt, float* DH, i64 T, i64 E, i64 K, i32 gate, double lb, double zl",
			`for (i64 t = ex_gtid(); t < T; t += ex_gstride()) {
    const float* row = H + t * E;
    i32* s = sel + t * K;
    float* dh = DH + t * E;
    const double tau = (double)TAU[0];
    ex_moe_pick<ACT>(row, E, K, s);
    for (i64 e = 0; e < E; e++) dh[e] = 0.0f;
    if (gate) ex_moe_gate_grad_tok<ACT, ALL>(row, E, K, s, tau, DG ? DG + t * E : DG, DW, TS ? TS + t * K : TS, dh);
    if (DAUX) ex_moe_aux_grad_tok<ACT>(row, T, E, K, cnt, tau, (double)DAUX[0], lb, zl, dh);
  }`)
		if err != nil {
			return err
		}
		g.emit(name, tokGrid, block, dG, dW, ts, daux, h, tau, sel, cnt, g.out(0), i64Arg(T), i64Arg(E), i64Arg(K), i32Arg(b2i(gate)), f64Arg(r.lb), f64Arg(r.zl))
	case "moe_route":
		wsel := scratchArg(g.reserve(4 * max(T*K, 1)))
		slotOf := scratchArg(g.reserve(4 * max(T*K, 1)))
		name, err := g.moeTokenEntry("route", r, "const float* H, const float* TAU, i32* sel, float* W, i64 T, i64 E, i64 K",
			"ex_moe_select_tok<ACT, ALL>(H, TAU, sel, W, T, E, K);")
		if err != nil {
			return err
		}
		g.emit(name, tokGrid, block, h, tau, sel, wsel, i64Arg(T), i64Arg(E), i64Arg(K))
		g.emit("ex_moe_counts", dim(1), block, sel, cnt, i64Arg(T), i64Arg(E), i64Arg(K))
		S := g.outType(0).Shape[0]
		g.emit("ex_moe_route_assign", dim(1), block, sel, wsel, cnt, slotOf, g.out(0), g.out(1), g.out(2), g.out(3), g.out(4), g.out(5),
			i64Arg(T), i64Arg(E), i64Arg(K), i64Arg(int64(g.attrs().Int("capacity", 0))), i64Arg(int64(S)))
		return aux(g.out(6))
	}
	return nil
}
