package codegen

import (
	"math"

	"github.com/expc-dev/expc/ir"
)

// attention and attention_grad (ir/optable_seq.go), as backends/cpu/seq.go
// computes them: one block per (sequence, head) pair, a thread per query
// row, float32 dot products and a float64 softmax denominator. The
// probabilities (and, backward, dS) are kept in scratch ([pairs, T, T]),
// not recomputed tile by tile: a simple kernel, correct before fast.
//
// Backward runs in two phases inside the block: each row i computes its
// probabilities, dP, dS_i· and dq_i; after a barrier each key row j sums
// dk_j = Σ_i dS_ij·q_i and dv_j = Σ_i P_ij·do_i in row order (the CPU's
// order), so no two threads write the same element.
func init() {
	addFamily("attention", []string{"math"}, `template <int GRAD>
EX_DEV void ex_attention(const float* DO, const float* Q, const float* K, const float* V, float* O, float* DK, float* DV,
                         float* Pbuf, float* DSbuf, i32 T, i32 D, i32 H, i32 causal, float scale) {
  const i32 pair = (i32)ex_bid_x();
  const i32 b = pair / H, h = pair % H, dh = D / H;
  float* P = Pbuf + (i64)pair * T * T;
  float* DS = DSbuf + (i64)pair * T * T;
#define EX_ROW(M, i) ((M) + ((i64)b * T + (i)) * D + (i64)h * dh)
  for (i32 i = (i32)ex_tid_x(); i < T; i += (i32)ex_bdim_x()) {
    float* p = P + (i64)i * T;
    const i32 last = causal ? i + 1 : T;
    const float* qi = EX_ROW(Q, i);
    float mx = -ex_inff();
    for (i32 j = 0; j < last; j++) {
      const float* kj = EX_ROW(K, j);
      float s = 0.0f;
      for (i32 c = 0; c < dh; c++) s += qi[c] * kj[c];
      p[j] = s * scale;
      mx = p[j] > mx ? p[j] : mx;
    }
    double sum = 0.0;
    for (i32 j = 0; j < last; j++) {
      const float e = ex_expf(p[j] - mx);
      p[j] = e;
      sum += (double)e;
    }
    const float inv = (float)ex_ddiv(1.0, sum);
    for (i32 j = 0; j < T; j++) p[j] = j < last ? p[j] * inv : 0.0f;
    if (!GRAD) {
      float* o = EX_ROW(O, i);
      for (i32 c = 0; c < dh; c++) {
        float acc = 0.0f;
        for (i32 j = 0; j < last; j++) acc += p[j] * EX_ROW(V, j)[c];
        o[c] = acc;
      }
      continue;
    }
    // dP_ij = do_i·v_j; dS_ij = P_ij (dP_ij − Σ_j dP_ij P_ij)·scale.
    const float* doi = EX_ROW(DO, i);
    float* ds = DS + (i64)i * T;
    float dot = 0.0f;
    for (i32 j = 0; j < T; j++) {
      ds[j] = 0.0f;
      if (p[j] == 0.0f) continue;
      const float* vj = EX_ROW(V, j);
      float s = 0.0f;
      for (i32 c = 0; c < dh; c++) s += doi[c] * vj[c];
      ds[j] = s;
      dot += s * p[j];
    }
    for (i32 j = 0; j < T; j++) if (p[j] != 0.0f) ds[j] = p[j] * (ds[j] - dot) * scale;
    float* dqi = EX_ROW(O, i);
    for (i32 c = 0; c < dh; c++) {
      float acc = 0.0f;
      for (i32 j = 0; j < T; j++) if (p[j] != 0.0f) acc += ds[j] * EX_ROW(K, j)[c];
      dqi[c] = acc;
    }
  }
  if (!GRAD) return;
  ex_sync();
  for (i32 j = (i32)ex_tid_x(); j < T; j += (i32)ex_bdim_x()) {
    float* dkj = EX_ROW(DK, j);
    float* dvj = EX_ROW(DV, j);
    for (i32 c = 0; c < dh; c++) {
      float ak = 0.0f, av = 0.0f;
      for (i32 i = 0; i < T; i++) {
        const float pij = P[(i64)i * T + j];
        if (pij == 0.0f) continue;
        ak += DS[(i64)i * T + j] * EX_ROW(Q, i)[c];
        av += pij * EX_ROW(DO, i)[c];
      }
      dkj[c] = ak;
      dvj[c] = av;
    }
  }
#undef EX_ROW
}

extern "C" __global__ void __launch_bounds__(256) ex_attention_fwd(const float* Q, const float* K, const float* V, float* O, float* P,
    i32 T, i32 D, i32 H, i32 causal, float scale) {
  ex_attention<0>(Q, Q, K, V, O, O, O, P, P, T, D, H, causal, scale);
}

extern "C" __global__ void __launch_bounds__(256) ex_attention_bwd(const float* DO, const float* Q, const float* K, const float* V,
    float* DQ, float* DK, float* DV, float* P, float* DS, i32 T, i32 D, i32 H, i32 causal, float scale) {
  ex_attention<1>(DO, Q, K, V, DQ, DK, DV, P, DS, T, D, H, causal, scale);
}
`)
	register("attention", func(g *gen) error { return genAttention(g, false) })
	register("attention_grad", func(g *gen) error { return genAttention(g, true) })
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		return ir.Attrs{"variant": "block_per_head"}
	}, "attention", "attention_grad")
}

func genAttention(g *gen, grad bool) error {
	qi := 0
	if grad {
		qi = 1
	}
	a := g.attrs()
	q := g.inType(qi)
	n, D := q.Shape[0], q.Shape[1]
	T, H := a.Int("seq", 1), a.Int("heads", 1)
	pairs := n / T * H
	dh := D / H
	scale := f32Arg(float32(1 / math.Sqrt(float64(dh))))
	g.use("attention")
	tt := 4 * int64(pairs) * int64(T) * int64(T)
	P := scratchArg(g.reserve(max(tt, 4)))
	if pairs == 0 {
		return nil
	}
	block := dim(min(blockThreads, max(warpSize, (T+warpSize-1)/warpSize*warpSize)))
	if !grad {
		g.emit("ex_attention_fwd", dim(pairs), block, g.in(0), g.in(1), g.in(2), g.out(0), P,
			i32Arg(T), i32Arg(D), i32Arg(H), i32Arg(b2i(a.Bool("causal", false))), scale)
		return nil
	}
	DS := scratchArg(g.reserve(max(tt, 4)))
	g.emit("ex_attention_bwd", dim(pairs), block, g.in(0), g.in(1), g.in(2), g.in(3), g.out(0), g.out(1), g.out(2), P, DS,
		i32Arg(T), i32Arg(D), i32Arg(H), i32Arg(b2i(a.Bool("causal", false))), scale)
	return nil
}
