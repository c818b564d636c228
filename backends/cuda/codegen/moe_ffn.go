package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// The fused mixture-of-experts layer (ir/optable_moe.go): moe_ffn and
// moe_ffn_grad, the grouped expert GEMMs over the permuted tokens, and
// moe_combine(_grad), as backends/cpu/moe_ffn.go defines them.
//
// The expert GEMMs are the simplest correct formulation: one launch per
// expert (each expert's weights are their own buffers), a thread per output
// element with a float32 dot product in index order. The expert's rows
// [offsets[e], offsets[e+1]) are read on the device, so each launch is
// sized for every slot and its grid-stride loop starts at the expert's
// first row. Weight gradients are a thread per weight summing the expert's
// rows in order. Rows past offsets[E] are zero, as on the CPU.
//
// moe_combine adds each token's slots in its order with the products
// rounded to float32 first (the CPU's "never fused" product); the combine
// gradient's dw uses the CPU's two float64 partial sums.
func init() {
	addFamily("moe_ffn", []string{"math"}, `EX_DEV float ex_moe_fmul(float a, float b) { float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }

// Σ_p A[s,p]·W(p,j) over p < k; W is [k,n] (TW = 0) or [n,k] (TW = 1).
template <int TW> EX_DEV float ex_moe_dot(const float* A, const float* W, i64 s, i64 j, i64 k, i64 n) {
  float v = 0.0f;
  for (i64 p = 0; p < k; p++) v += A[s * k + p] * (TW ? W[j * k + p] : W[p * n + j]);
  return v;
}

// Rows of expert e: out[s,j] for s in [off[e], off[e+1]).
#define EX_MOE_ROWS(n) \
  const i64 lo = (i64)off[e] * (n), hi = (i64)off[e + 1] * (n); \
  for (i64 i = lo + ex_gtid(); i < hi; i += ex_gstride())

// z = xp·W1 + b1, h = act(z) (z kept unless Z is null).
template <int ACT> EX_DEV void ex_moe_ffn_up_t(const float* XP, const i32* off, i32 e, const float* W1, const float* B1, float* Z, float* Hh, i64 d, i64 H) {
  EX_MOE_ROWS(H) {
    const i64 s = i / H, j = i % H;
    const float v = ex_moe_dot<0>(XP, W1, s, j, d, H) + B1[j];
    if (Z) Z[i] = v;
    Hh[i] = ex_act<ACT>(v);
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_moe_ffn_down(const float* Hh, const i32* off, i32 e, const float* W2, const float* B2, float* Y, i64 d, i64 H) {
  EX_MOE_ROWS(d) {
    const i64 s = i / d, j = i % d;
    Y[i] = ex_moe_dot<0>(Hh, W2, s, j, H, d) + B2[j];
  }
}

// dz = (dy·W2ᵀ)·act'(pre).
template <int ACT> EX_DEV void ex_moe_ffn_dz_t(const float* DY, const float* PRE, const i32* off, i32 e, const float* W2, float* DZ, i64 d, i64 H) {
  EX_MOE_ROWS(H) {
    const i64 s = i / H, j = i % H;
    DZ[i] = ex_mul_act_grad<ACT>(ex_moe_dot<1>(DY, W2, s, j, d, H), PRE[i]);
  }
}

// dxp = dz·W1ᵀ.
extern "C" __global__ void __launch_bounds__(256) ex_moe_ffn_dx(const float* DZ, const i32* off, i32 e, const float* W1, float* DXP, i64 d, i64 H) {
  EX_MOE_ROWS(d) {
    const i64 s = i / d, p = i % d;
    DXP[i] = ex_moe_dot<1>(DZ, W1, s, p, H, d);
  }
}

// dW[p,j] = Σ_s A[s,p]·B[s,j] and dB[j] = Σ_s B[s,j] over expert e's rows.
extern "C" __global__ void __launch_bounds__(256) ex_moe_ffn_wgrad(const float* A, const float* B, const i32* off, i32 e, float* DW, float* DB, i64 ka, i64 kb) {
  const i64 s0 = off[e], s1 = off[e + 1];
  for (i64 i = ex_gtid(); i < ka * kb + kb; i += ex_gstride()) {
    float v = 0.0f;
    if (i < ka * kb) {
      const i64 p = i / kb, j = i % kb;
      for (i64 s = s0; s < s1; s++) v += A[s * ka + p] * B[s * kb + j];
      DW[i] = v;
    } else {
      const i64 j = i - ka * kb;
      for (i64 s = s0; s < s1; s++) v += B[s * kb + j];
      DB[j] = v;
    }
  }
}

// Zero rows [off[E], S) of up to three [S, n_i] outputs (null: none).
extern "C" __global__ void __launch_bounds__(256) ex_moe_ffn_tail(const i32* off, i32 E, float* A, i64 na, float* B, i64 nb, float* C, i64 nc, i64 S) {
  const i64 s0 = off[E];
  for (i64 i = s0 * na + ex_gtid(); A && i < S * na; i += ex_gstride()) A[i] = 0.0f;
  for (i64 i = s0 * nb + ex_gtid(); B && i < S * nb; i += ex_gstride()) B[i] = 0.0f;
  for (i64 i = s0 * nc + ex_gtid(); C && i < S * nc; i += ex_gstride()) C[i] = 0.0f;
}

extern "C" __global__ void __launch_bounds__(256) ex_moe_combine(const float* Y, const i32* ts, const float* W, float* O, i64 T, i64 K, i64 S, i64 d) {
  for (i64 i = ex_gtid(); i < T * d; i += ex_gstride()) {
    const i64 t = i / d, j = i % d;
    float v = 0.0f;
    for (i64 q = 0; q < K; q++) {
      const i32 s = ts[t * K + q];
      if (s < 0 || s >= S) continue;
      v += W ? ex_moe_fmul(Y[(i64)s * d + j], W[s]) : Y[(i64)s * d + j];
    }
    O[i] = v;
  }
}

extern "C" __global__ void __launch_bounds__(256) ex_moe_combine_grad(const float* DY, const float* Y, const float* W, const i32* perm, float* DYS, float* DW, i64 T, i64 S, i64 d) {
  for (i64 i = ex_gtid(); i < S * d; i += ex_gstride()) {
    const i64 s = i / d, j = i % d;
    const i32 t = perm[s];
    DYS[i] = (t < 0 || t >= T) ? 0.0f : ex_moe_fmul(DY[(i64)t * d + j], W[s]);
  }
  for (i64 s = ex_gtid(); s < S; s += ex_gstride()) {
    const i32 t = perm[s];
    if (t < 0 || t >= T) { DW[s] = 0.0f; continue; }
    const float* a = DY + (i64)t * d;
    const float* b = Y + s * d;
    double s0 = 0.0, s1 = 0.0;
    i64 i = 0;
    for (; i + 2 <= d; i += 2) {
      s0 = ex_dadd(s0, ex_dmul((double)a[i], (double)b[i]));
      s1 = ex_dadd(s1, ex_dmul((double)a[i + 1], (double)b[i + 1]));
    }
    if (i < d) s0 = ex_dadd(s0, ex_dmul((double)a[i], (double)b[i]));
    DW[s] = (float)ex_dadd(s0, s1);
  }
}
`)
	register("moe_ffn", genMoEFFN)
	register("moe_ffn_grad", genMoEFFNGrad)
	register("moe_combine", func(g *gen) error {
		y, ts := g.inType(0), g.inType(1)
		T, K, S, d := ts.Shape[0], ts.Shape[1], y.Shape[0], y.Shape[1]
		w := Arg{Kind: ArgI64} // null: no weights
		if len(g.k.Ins) == 3 {
			w = g.in(2)
		}
		g.use("moe_ffn")
		g.emit("ex_moe_combine", dim(streamChoice(max(int64(T*d), 1)).Int("grid", 1)), dim(blockThreads), g.in(0), g.in(1), w, g.out(0),
			i64Arg(int64(T)), i64Arg(int64(K)), i64Arg(int64(S)), i64Arg(int64(d)))
		return nil
	})
	register("moe_combine_grad", func(g *gen) error {
		dy, y := g.inType(0), g.inType(1)
		S, d := y.Shape[0], y.Shape[1]
		g.use("moe_ffn")
		g.emit("ex_moe_combine_grad", dim(streamChoice(max(int64(S*d), 1)).Int("grid", 1)), dim(blockThreads), g.in(0), g.in(1), g.in(2), g.in(3),
			g.out(0), g.out(1), i64Arg(int64(dy.Shape[0])), i64Arg(int64(S)), i64Arg(int64(d)))
		return nil
	})
}

// moeActEntry adds a wrapper entry calling family template fn<ACT>.
func (g *gen) moeActEntry(fn string, act int, params, args string) string {
	name := fmt.Sprintf("%s_a%d", fn, act)
	_ = g.entry(name, fmt.Sprintf("extern \"C\" __global__ void __launch_bounds__(256) %s(%s) {\n  %s_t<%d>(%s);\n}\n", name, params, fn, act, args))
	return name
}

func moeFFNAct(g *gen) (int, string, error) {
	name := g.attrs().Str("act", "relu")
	act, ok := actNumbers[name]
	if !ok {
		return 0, name, fmt.Errorf("unknown expert activation %q", name)
	}
	return act, name, nil
}

func genMoEFFN(g *gen) error {
	act, name, err := moeFFNAct(g)
	if err != nil {
		return err
	}
	E := g.attrs().Int("experts", 0)
	xt, xp, h := g.inType(0), g.outType(0), g.outType(len(g.k.Outs)-2)
	T, S, d, H := xt.Shape[0], xp.Shape[0], xp.Shape[1], h.Shape[1]
	null := Arg{Kind: ArgI64}
	z := null
	if ir.MoEFFNKeepsPre(name) {
		z = g.out(1)
	}
	hOut, y := g.out(len(g.k.Outs)-2), g.out(len(g.k.Outs)-1)
	g.use("moe_ffn")
	if err := g.entry("ex_moe_gather", streamEntry("ex_moe_gather", "const float* X, const i32* idx, float* Y, i64 d, i64 T",
		"const i32 t = idx[i / d]; Y[i] = (t >= 0 && t < T) ? X[(i64)t * d + i % d] : 0.0f;")); err != nil {
		return err
	}
	block := dim(blockThreads)
	grid := func(n int) [3]uint32 { return dim(streamChoice(max(int64(n), 1)).Int("grid", 1)) }
	g.emit("ex_moe_gather", grid(S*d), block, g.in(0), g.in(1), g.out(0), i64Arg(int64(max(d, 1))), i64Arg(int64(T)), i64Arg(int64(S*d)))
	up := g.moeActEntry("ex_moe_ffn_up", act, "const float* XP, const i32* off, i32 e, const float* W1, const float* B1, float* Z, float* Hh, i64 d, i64 H",
		"XP, off, e, W1, B1, Z, Hh, d, H")
	off := g.in(2)
	for e := 0; e < E; e++ {
		g.emit(up, grid(S*H), block, g.out(0), off, i32Arg(e), g.in(3+e), g.in(3+E+e), z, hOut, i64Arg(int64(d)), i64Arg(int64(H)))
		g.emit("ex_moe_ffn_down", grid(S*d), block, hOut, off, i32Arg(e), g.in(3+2*E+e), g.in(3+3*E+e), y, i64Arg(int64(d)), i64Arg(int64(H)))
	}
	g.emit("ex_moe_ffn_tail", grid(S*max(d, H)), block, off, i32Arg(E), z, i64Arg(int64(H)), hOut, i64Arg(int64(H)), y, i64Arg(int64(d)), i64Arg(int64(S)))
	return nil
}

func genMoEFFNGrad(g *gen) error {
	act, name, err := moeFFNAct(g)
	if err != nil {
		return err
	}
	E := g.attrs().Int("experts", 0)
	dyT := g.inType(0)
	S, d := dyT.Shape[0], dyT.Shape[1]
	n := 2
	pre := ir.MoEFFNKeepsPre(name)
	var preArg Arg
	if pre {
		preArg = g.in(n)
		n++
	}
	hIn, off := g.in(n), g.in(n+1)
	if !pre {
		preArg = hIn // relu'(z) = relu'(relu(z))
	}
	H := g.inType(n).Shape[1]
	w1 := func(e int) Arg { return g.in(n + 2 + e) }
	w2 := func(e int) Arg { return g.in(n + 2 + E + e) }
	null := Arg{Kind: ArgI64}
	r := 0
	dxp := null
	if g.attrs().Bool("dx", false) {
		dxp = g.out(0)
		r++
	}
	dz := g.out(r)
	out := func(i, e int) Arg { return g.out(r + 1 + i*E + e) } // 0 dW1, 1 db1, 2 dW2, 3 db2
	g.use("moe_ffn")
	block := dim(blockThreads)
	grid := func(n int) [3]uint32 { return dim(streamChoice(max(int64(n), 1)).Int("grid", 1)) }
	dzEntry := g.moeActEntry("ex_moe_ffn_dz", act, "const float* DY, const float* PRE, const i32* off, i32 e, const float* W2, float* DZ, i64 d, i64 H",
		"DY, PRE, off, e, W2, DZ, d, H")
	for e := 0; e < E; e++ {
		g.emit(dzEntry, grid(S*H), block, g.in(0), preArg, off, i32Arg(e), w2(e), dz, i64Arg(int64(d)), i64Arg(int64(H)))
		if dxp != null {
			g.emit("ex_moe_ffn_dx", grid(S*d), block, dz, off, i32Arg(e), w1(e), dxp, i64Arg(int64(d)), i64Arg(int64(H)))
		}
		g.emit("ex_moe_ffn_wgrad", grid(H*d+d), block, hIn, g.in(0), off, i32Arg(e), out(2, e), out(3, e), i64Arg(int64(H)), i64Arg(int64(d)))
		g.emit("ex_moe_ffn_wgrad", grid(d*H+H), block, g.in(1), dz, off, i32Arg(e), out(0, e), out(1, e), i64Arg(int64(d)), i64Arg(int64(H)))
	}
	g.emit("ex_moe_ffn_tail", grid(S*max(d, H)), block, off, i32Arg(E), dz, i64Arg(int64(H)), dxp, i64Arg(int64(d)), null, i64Arg(0), i64Arg(int64(S)))
	return nil
}
