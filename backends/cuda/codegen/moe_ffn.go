package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// The fused mixture-of-experts layer (ir/optable_moe.go): moe_ffn and
// moe_ffn_grad, the grouped expert GEMMs over the permuted tokens, and
// moe_combine(_grad), as backends/cpu/moe_ffn.go defines them.
//
// The expert products are tiled GEMMs, one launch per expert and product
// (moe_gemm.go): z = xp·W1 + b1 and h = act(z), then y = h·W2 + b2; in the
// backward dz = (dy·W2ᵀ)·act'(pre), dxp = dz·W1ᵀ, and the weight and bias
// gradients over the expert's rows. The expert's rows [offsets[e],
// offsets[e+1]) are read on the device. Rows past offsets[E] are zero, as
// on the CPU.
//
// moe_combine adds each token's slots in its order with the products
// rounded to float32 first (the CPU's "never fused" product); the combine
// gradient's dw uses the CPU's two float64 partial sums.
func init() {
	addFamily("moe_ffn", []string{"math"}, `EX_DEV float ex_moe_fmul(float a, float b) { float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }

// Zero rows [off[E], S) of up to three [S, n_i] outputs (null: none).
extern "C" __global__ void __launch_bounds__(256) ex_moe_ffn_tail(const i32* off, i32 E, float* A, i64 na, float* B, i64 nb, float* C, i64 nc, i64 S) {
  const i64 s0 = off[E] < 0 ? 0 : off[E];
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
	up, err := g.moeTile("tile_up")
	if err != nil {
		return err
	}
	down, err := g.moeTile("tile_down")
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
	off := g.in(2)
	for e := 0; e < E; e++ {
		if err := g.moeGemm(moeProduct{rows: true, epi: 1, act: act, A: g.out(0), B: g.in(3 + e), E: g.in(3 + E + e), C: hOut, C2: z, CB: null,
			off: off, e: e, S: S, N: H, K: d, lda: d, ldb: H, tile: up}); err != nil {
			return err
		}
		if err := g.moeGemm(moeProduct{rows: true, epi: 1, A: hOut, B: g.in(3 + 2*E + e), E: g.in(3 + 3*E + e), C: y, C2: null, CB: null,
			off: off, e: e, S: S, N: d, K: H, lda: H, ldb: d, tile: down}); err != nil {
			return err
		}
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
	tiles := map[string]gemmTile{}
	keys := []string{"tile_dz", "tile_dw1", "tile_dw2"}
	r := 0
	dxp := null
	if g.attrs().Bool("dx", false) {
		dxp = g.out(0)
		r++
		keys = append(keys, "tile_dx")
	}
	for _, key := range keys {
		t, err := g.moeTile(key)
		if err != nil {
			return err
		}
		tiles[key] = t
	}
	dz := g.out(r)
	out := func(i, e int) Arg { return g.out(r + 1 + i*E + e) } // 0 dW1, 1 db1, 2 dW2, 3 db2
	g.use("moe_ffn")
	block := dim(blockThreads)
	grid := func(n int) [3]uint32 { return dim(streamChoice(max(int64(n), 1)).Int("grid", 1)) }
	for e := 0; e < E; e++ {
		ps := []moeProduct{
			{rows: true, tb: true, epi: 2, act: act, A: g.in(0), B: w2(e), E: preArg, C: dz, C2: null, CB: null, N: H, K: d, lda: d, ldb: d, tile: tiles["tile_dz"]},
			{rows: true, tb: true, A: dz, B: w1(e), E: null, C: dxp, C2: null, CB: null, N: d, K: H, lda: H, ldb: H, tile: tiles["tile_dx"]},
			{A: hIn, B: g.in(0), E: null, C: out(2, e), C2: null, CB: out(3, e), M: H, N: d, lda: H, ldb: d, tile: tiles["tile_dw2"]},
			{A: g.in(1), B: dz, E: null, C: out(0, e), C2: null, CB: out(1, e), M: d, N: H, lda: d, ldb: H, tile: tiles["tile_dw1"]},
		}
		for i, p := range ps {
			if i == 1 && dxp == null {
				continue
			}
			p.off, p.e, p.S = off, e, S
			if err := g.moeGemm(p); err != nil {
				return err
			}
		}
	}
	g.emit("ex_moe_ffn_tail", grid(S*max(d, H)), block, off, i32Arg(E), dz, i64Arg(int64(H)), dxp, i64Arg(int64(d)), null, i64Arg(0), i64Arg(int64(S)))
	return nil
}
