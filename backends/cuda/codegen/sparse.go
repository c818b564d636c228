package codegen

import (
	"fmt"

	"github.com/expc-dev/expc/ir"
)

// Sparse training ops (ir/optable_sparse.go), as backends/cpu/sparse
// defines them.
//
// masked_matmul and masked_matmul_dw run the variant the cuda-launch pass
// records (maskedVariant, from the plan's "kernel" attribute): compressed
// N:M (sparse_nm.go), block-sparse (sparse_block.go), index lists
// (sparse_csr.go) or dense-with-mask (below). Every variant computes the
// op's definition, W ⊙ M with the mask's values as multipliers (the
// compressed ones skip the positions where M is 0), so on a 0/1 mask they
// agree with every CPU kernel.
//
// The compressed variants keep nothing between kernels: scratch is shared
// by all kernels of a step, so each builds its compressed form (index
// lists, occupied tiles, packed N:M slots) from W and M in its own first
// launches, every step. W changes every step anyway, and the build costs
// one read of M (and W), which dense-with-mask pays too.
//
// Dense-with-mask: forward and input products write W ⊙ M into scratch and
// run the GEMM template with the op's epilogue; the weight gradient runs
// the GEMM (Xᵀ·dY) and multiplies by M in place.
//
// mask_update runs as one 256-thread block (it runs at most once a step and
// mostly returns at once): the keys go to scratch in float64, exactly as the
// CPU computes them; the k-th largest key is found by a bitwise radix
// select (non-negative float64 keys order as their bits), and ties are kept
// lowest index first by a block prefix count in index order, which is the
// definition's order. The generation hash (FNV-1a over kept indices in
// order) is sequential, so thread 0 computes it.
func init() {
	addFamily("sparse", []string{"rng"}, `EX_DEV double ex_fabs_d(double x) { return ex_u2d(ex_d2u(x) & 0x7fffffffffffffffull); }

// ex_block_sum_u64: the sum over a 256-thread block; every thread gets it.
EX_DEV u64 ex_block_sum_u64(u64 v, u64* sh) {
  const i32 t = (i32)ex_tid_x();
  sh[t] = v;
  ex_sync();
  for (i32 s = 128; s > 0; s >>= 1) {
    if (t < s) sh[t] += sh[t + s];
    ex_sync();
  }
  const u64 r = sh[0];
  ex_sync();
  return r;
}

// ex_round_half_away(x) for x >= 0, as Go's math.Round.
EX_DEV i64 ex_round_pos(double x) {
  i64 t = (i64)x;
  if (ex_dsub(x, (double)t) >= 0.5) t++;
  return t;
}

// ex_keep_top marks the k units of keys[0:n) with the largest keys (ties:
// lower index first) by calling set(i, keep) for every unit. Keys are
// non-negative float64 (as bits). One block of 256 threads.
template <typename SET>
EX_DEV void ex_keep_top(const double* keys, i64 n, i64 k, SET set, u64* sh) {
  const i32 t = (i32)ex_tid_x();
  if (k >= n) {
    for (i64 i = t; i < n; i += 256) set(i, true);
    ex_sync();
    return;
  }
  // Radix select of the k-th largest key, from the top bit down.
  u64 prefix = 0;
  u64 kk = (u64)k;
  for (i32 bit = 63; bit >= 0; bit--) {
    const u64 want = (prefix >> bit) | 1ull;
    u64 c = 0;
    for (i64 i = t; i < n; i += 256) c += (ex_d2u(keys[i]) >> bit) == want;
    c = ex_block_sum_u64(c, sh);
    if (c >= kk) prefix |= 1ull << bit;
    else kk -= c;
  }
  u64 above = 0;
  for (i64 i = t; i < n; i += 256) above += ex_d2u(keys[i]) > prefix;
  above = ex_block_sum_u64(above, sh);
  // Keys equal to the threshold are kept lowest index first: walk the
  // units in chunks of 256, ranking the ties of each chunk by a prefix sum.
  u64 ties = (u64)k - above, seen = 0;
  for (i64 base = 0; base < n; base += 256) {
    const i64 i = base + t;
    const u64 b = i < n ? ex_d2u(keys[i]) : 0;
    const u64 eq = (i < n && b == prefix) ? 1 : 0;
    sh[t] = eq;
    ex_sync();
    for (i32 s = 1; s < 256; s <<= 1) { // inclusive Hillis-Steele scan
      const u64 add = t >= s ? sh[t - s] : 0;
      ex_sync();
      sh[t] += add;
      ex_sync();
    }
    const u64 rank = seen + sh[t] - eq; // ties before unit i
    if (i < n) set(i, b > prefix || (eq && rank < ties));
    seen += sh[255];
    ex_sync();
  }
}

struct ex_set_weight {
  float* m;
  __device__ __forceinline__ void operator()(i64 i, bool keep) const { m[i] = keep ? 1.0f : 0.0f; }
};

struct ex_set_block {
  float* m;
  i64 cols, nbc, bh, bw;
  __device__ __forceinline__ void operator()(i64 bi, bool keep) const {
    const i64 r0 = bi / nbc * bh, c0 = bi % nbc * bw;
    for (i64 r = r0; r < r0 + bh; r++)
      for (i64 c = c0; c < c0 + bw; c++) m[r * cols + c] = keep ? 1.0f : 0.0f;
  }
};

// ex_mask_update: pattern 0 unstructured, 1 nm, 2 block; sched 0 static,
// 1 gradual, 2 reselect. keys: rows*cols (+ blocks) float64 of scratch.
extern "C" __global__ void __launch_bounds__(256) ex_mask_update(
    const float* W0, const float* M0, const i32* G0, const i32* stepp, float* W, float* M, i32* G, double* keys,
    i64 rows, i64 cols, i32 pattern, i32 init_random, i32 sched, double final_d, double initial_d,
    i64 start, i64 end, i64 dense_at, u64 seed, i64 gn, i64 gm, i64 bh, i64 bw) {
  __shared__ u64 sh[256];
  const i32 t = (i32)ex_tid_x();
  const i64 n = rows * cols;
  const i64 step = stepp[0];
  const i32 gen0 = G0[0];
  if (W != W0) for (i64 i = t; i < n; i += 256) W[i] = W0[i];
  if (M != M0) for (i64 i = t; i < n; i += 256) M[i] = M0[i];
  ex_sync();
  bool changed = true;
  if (dense_at > 0 && step >= dense_at) {
    for (i64 i = t; i < n; i += 256) { W[i] *= M[i]; M[i] = 1.0f; }
  } else {
    const bool first = step == 0 || gen0 == 0;
    if (!first && sched == 0) changed = false;
    else {
      const bool random = first && init_random;
      const bool gradual = !first && sched == 1;
      // The density at this step (ir.MaskDensityAt), rounded as Go does.
      double density = final_d;
      if (sched == 1) {
        double p = 1.0;
        if (end > start) {
          p = ex_ddiv((double)(step - start), (double)(end - start));
          p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
        }
        const double q = ex_dsub(1.0, p);
        density = ex_dadd(final_d, ex_dmul(ex_dmul(ex_dmul(ex_dsub(initial_d, final_d), q), q), q));
      }
      const u64 s = ex_mix(seed);
      for (i64 i = t; i < n; i += 256) {
        double key;
        if (random) key = (double)ex_rng_uniform(s, (u64)i);
        else if (gradual) key = ex_fabs_d((double)(W[i] * M[i]));
        else key = ex_fabs_d((double)W[i]);
        keys[i] = key;
      }
      ex_sync();
      if (pattern == 1) {
        // Exactly gn per group of gm rows of each column: the largest
        // remaining key, the lower row on ties.
        const i64 groups = (rows / gm) * cols;
        for (i64 u = t; u < groups; u += 256) {
          const i64 j = u % cols, g = (u / cols) * gm;
          for (i64 r = 0; r < gm; r++) M[(g + r) * cols + j] = 0.0f;
          for (i64 c = 0; c < gn; c++) {
            i64 best = -1;
            for (i64 r = 0; r < gm; r++) {
              const i64 i = (g + r) * cols + j;
              if (M[i] == 0.0f && (best < 0 || keys[i] > keys[(g + best) * cols + j])) best = r;
            }
            M[(g + best) * cols + j] = 1.0f;
          }
        }
      } else if (pattern == 2) {
        const i64 nbc = cols / bw, nb = (rows / bh) * nbc;
        double* bkeys = keys + n;
        for (i64 bi = t; bi < nb; bi += 256) {
          double acc = 0.0;
          if (random) acc = (double)ex_rng_uniform(s, (u64)bi);
          else {
            const i64 r0 = bi / nbc * bh, c0 = bi % nbc * bw;
            for (i64 r = r0; r < r0 + bh; r++)
              for (i64 c = c0; c < c0 + bw; c++) acc = ex_dadd(acc, keys[r * cols + c]);
          }
          bkeys[bi] = acc;
        }
        ex_sync();
        i64 k = ex_round_pos(ex_dmul(density, (double)nb));
        k = k < 1 ? 1 : (k > nb ? nb : k);
        ex_keep_top(bkeys, nb, k, ex_set_block{M, cols, nbc, bh, bw}, sh);
      } else {
        i64 k = ex_round_pos(ex_dmul(density, (double)n));
        k = k < 1 ? 1 : (k > n ? n : k);
        ex_keep_top(keys, n, k, ex_set_weight{M}, sh);
      }
    }
  }
  ex_sync();
  if (t == 0) {
    if (!changed) G[0] = gen0;
    else {
      u32 h = 2166136261u;
      for (i64 i = 0; i < n; i++)
        if (M[i] != 0.0f) h = (h ^ (u32)i) * 16777619u;
      G[0] = h == 0 ? 1 : (i32)h;
    }
  }
}
`)
	register("mask_update", genMaskUpdate)
	register("masked_matmul", genMaskedMatmul)
	register("masked_matmul_dw", genMaskedMatmul)
	chooseFor(func(plan *ir.Plan, k *ir.Kernel) ir.Attrs {
		m, n := maskedDims(plan, k)
		v := maskedVariant(k)
		if v == "csr" || v == "nm" && k.Op == "masked_matmul_dw" { // thread-per-weight kernels: no tile
			return ir.Attrs{"variant": v}
		}
		return ir.Attrs{"variant": v, "tile": chooseGemmTile(m, n).ints()}
	}, "masked_matmul", "masked_matmul_dw")
}

// maskedVariant is the CUDA variant of a masked product: the plan's kernel
// attribute, except that N:M runs on index lists when it cannot be packed
// (pattern attributes that are not n:m with m <= nmMaxM) and for the input
// gradient, whose reduction runs along W's columns while the N:M groups run
// along its rows (the packed form has no compressed K there).
func maskedVariant(k *ir.Kernel) string {
	a := k.Attrs
	switch a.Str("kernel", "dense") {
	case "nm":
		n, m := a.Int("n", 0), a.Int("m", 0)
		if a.Str("pattern", "unstructured") != "nm" || n < 1 || m <= n || m > nmMaxM {
			return "csr"
		}
		if k.Op == "masked_matmul" && a.Bool("transpose_b", false) {
			return "csr"
		}
		return "nm"
	case "block":
		return "block"
	case "csr":
		return "csr"
	}
	return "dense_mask"
}

// maskedDims is the output's rows and columns.
func maskedDims(plan *ir.Plan, k *ir.Kernel) (m, n int) {
	if len(k.Outs) == 0 {
		return 0, 0
	}
	s := plan.Buffers[k.Outs[0]].Type.Shape
	if len(s) != 2 {
		return 0, 0
	}
	return s[0], s[1]
}

func genMaskUpdate(g *gen) error {
	a := g.attrs()
	w := g.inType(0)
	rows, cols := w.Shape[0], w.Shape[1]
	n := int64(rows) * int64(cols)
	pattern := map[string]int{"unstructured": 0, "nm": 1, "block": 2}[a.Str("pattern", "unstructured")]
	sched, ok := map[string]int{"static": 0, "gradual": 1, "reselect": 2}[a.Str("schedule", "static")]
	if !ok {
		return fmt.Errorf("unknown mask schedule %q", a.Str("schedule", "static"))
	}
	bh, bw := 1, 1
	nb := int64(0)
	if b := a.Ints("block"); len(b) == 2 {
		bh, bw = b[0], b[1]
		nb = int64(rows/bh) * int64(cols/bw)
	}
	g.use("sparse")
	keys := g.reserve(8 * (n + nb))
	g.emit("ex_mask_update", dim(1), dim(blockThreads), g.in(0), g.in(1), g.in(2), g.in(3), g.out(0), g.out(1), g.out(2), scratchArg(keys),
		i64Arg(int64(rows)), i64Arg(int64(cols)), i32Arg(pattern), i32Arg(b2i(a.Str("init", "random") == "random")), i32Arg(sched),
		f64Arg(a.Float("density", 1)), f64Arg(a.Float("initial_density", 1)), i64Arg(int64(a.Int("start", 0))), i64Arg(int64(a.Int("end", 0))),
		i64Arg(int64(a.Int("dense_at", 0))), u64Arg(uint64(a.Int("seed", 0))), i64Arg(int64(a.Int("n", 1))), i64Arg(int64(a.Int("m", 1))),
		i64Arg(int64(bh)), i64Arg(int64(bw)))
	return nil
}

func genMaskedMatmul(g *gen) error {
	a := g.attrs()
	if k := a.Str("kernel", "dense"); k != "dense" && k != "nm" && k != "block" && k != "csr" {
		return fmt.Errorf("unknown masked kernel %q", k)
	}
	mt := g.inType(2) // the mask: W's shape, rows (in) x cols (out)
	rows, cols := mt.Shape[0], mt.Shape[1]
	batch := g.inType(0).Shape[0]
	v := g.launchAttrs().Str("variant", "dense_mask")
	if rows == 0 || cols == 0 || batch == 0 {
		v = "dense_mask" // nothing to skip; the GEMM template handles empty sizes
	}
	switch v {
	case "dense_mask":
	case "nm":
		if maskedVariant(g.k) != "nm" {
			return fmt.Errorf("launch variant nm, but the kernel's attributes do not allow N:M packing (want %s)", maskedVariant(g.k))
		}
		return genMaskedNM(g)
	case "block":
		return genMaskedBlock(g)
	case "csr":
		return genMaskedCSR(g)
	default:
		return fmt.Errorf("unknown launch variant %q for %s (want nm, block, csr or dense_mask)", v, g.k.Op)
	}
	tile, ok := tileFromAttrs(g.launchAttrs())
	if !ok {
		if _, has := g.launchAttrs()["tile"]; has {
			return fmt.Errorf("launch tile %v is not one the cuda backend knows (%v)", g.launchAttrs()["tile"], gemmTiles)
		}
		tile = chooseGemmTile(maskedDims(g.plan, g.k)) // a csr kernel records no tile
	}
	g.use("gemm")
	if err := g.entry("ex_mask_mul", streamEntry("ex_mask_mul", "const float* X, const float* Mk, float* Y", "Y[i] = X[i] * Mk[i];")); err != nil {
		return err
	}
	mask := func(x, y Arg) {
		n := int64(rows) * int64(cols)
		if n > 0 {
			g.emit("ex_mask_mul", dim(streamChoice(n).Int("grid", 1)), dim(blockThreads), x, g.in(2), y, i64Arg(n))
		}
	}
	if g.k.Op == "masked_matmul_dw" {
		// D[rows, cols] = (Xᵀ·dY) ⊙ M: X is batch x rows, dY batch x cols.
		if err := emitGemm(g, tile, true, false, 0, "none", g.in(0), g.in(1), g.out(0), g.out(0), rows, cols, batch, rows, cols); err != nil {
			return err
		}
		mask(g.out(0), g.out(0))
		return nil
	}
	act, epi, extra, err := maskedEpilogue(g)
	if err != nil {
		return err
	}
	wm := scratchArg(g.reserve(4 * int64(rows) * int64(cols)))
	mask(g.in(1), wm)
	if a.Bool("transpose_b", false) {
		// C[batch, rows] = A[batch, cols]·(W⊙M)ᵀ
		return emitGemm(g, tile, false, true, epi, act, g.in(0), wm, extra, g.out(0), batch, rows, cols, cols, cols)
	}
	// C[batch, cols] = A[batch, rows]·(W⊙M)
	return emitGemm(g, tile, false, false, epi, act, g.in(0), wm, extra, g.out(0), batch, cols, rows, rows, cols)
}

// maskedEpilogue is a forward or input product's epilogue: the activation,
// the GEMM template's EPI (0 none, 1 bias, 2 times act'(pre)) and its
// operand (any valid buffer when EPI is 0).
func maskedEpilogue(g *gen) (act string, epi int, extra Arg, err error) {
	act, epi, extra = g.attrs().Str("act", "none"), 0, g.out(0)
	if _, ok := actNumbers[act]; !ok {
		return "", 0, extra, fmt.Errorf("unknown activation %q", act)
	}
	if len(g.k.Ins) == 5 {
		extra, epi = g.in(4), 1
		if g.inType(4).Rank() == 2 {
			epi = 2
		}
	}
	return act, epi, extra, nil
}

// emitGemm adds and launches one instance of the GEMM template:
// C[m, n] = epilogue(op(A)·op(B)) with inner size k.
func emitGemm(g *gen, tile gemmTile, ta, tb bool, epi int, act string, A, B, E, C Arg, m, n, k, lda, ldb int) error {
	actN, ok := actNumbers[act]
	if !ok {
		return fmt.Errorf("unknown activation %q", act)
	}
	name := fmt.Sprintf("ex_gemm_%s%s_%s_%s_%s", tchar(ta), tchar(tb), []string{"plain", "bias", "grad"}[epi], act, tile)
	src := fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(%d) %s(const float* A, const float* B, const float* E, float* C, i32 M, i32 N, i32 K, i32 lda, i32 ldb) {
  ex_gemm<%d, %d, %d, %d, %d, %d, %d, %d, %d>(A, B, E, C, M, N, K, lda, ldb);
}
`, tile.threads(), name, b2i(ta), b2i(tb), epi, actN, tile.BM, tile.BN, tile.BK, tile.TM, tile.TN)
	if err := g.entry(name, src); err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	g.emit(name, dim2((n+tile.BN-1)/tile.BN, (m+tile.BM-1)/tile.BM), dim(tile.threads()),
		A, B, E, C, i32Arg(m), i32Arg(n), i32Arg(k), i32Arg(max(1, lda)), i32Arg(max(1, ldb)))
	return nil
}
