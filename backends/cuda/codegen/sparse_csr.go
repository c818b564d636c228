package codegen

import (
	"fmt"
)

// The index-list ("csr") variant of the masked products, for any mask.
//
// Each step it builds, in scratch, the list of kept reduction indices of
// every output (forward: per column j of W the rows k with M[k, j] != 0;
// input gradient: per row k the columns j), ascending, with the kept
// values W·M, in three launches: a count per output (one thread each), an
// exclusive scan in one block, and a fill (one thread per output, in
// index order, so the lists and every later sum are the same run to run).
//
// SpMM: a warp owns csrOuts outputs and walks their lists together on all
// 32 lanes (no divergence: every lane takes the same entries), the lanes
// covering 64 batch rows; the block stages the batch rows' slab of the
// dense operand in shared memory, csrK reduction indices at a time, and
// each kept weight costs one shared load and one FMA per batch row. The
// results go through shared memory so that the stores run along rows.
//
// Weight gradient (SDDMM): the lists of the forward orientation with the
// mask's values; one thread per kept weight sums X[:, k]·dY[:, j] over the
// batch (neighbouring threads share j and have nearby k, so the loads
// coalesce), and the fill writes the zeros of the pruned positions.
func init() {
	addFamily("sparse_csr", []string{"math"}, `// ex_csr_count: cnt[o] = kept reduction indices of output o. Element (o, p)
// of the mask is Mk[o*so + p*sp].
extern "C" __global__ void __launch_bounds__(256) ex_csr_count(const float* Mk, i32* cnt, i32 nout, i32 nred, i64 so, i64 sp) {
  for (i64 o = ex_gtid(); o < nout; o += ex_gstride()) {
    i32 c = 0;
    for (i64 p = 0; p < nred; p++) c += Mk[o * so + p * sp] != 0.0f;
    cnt[o] = c;
  }
}

// ex_csr_scan: ptr[0..n] = exclusive prefix sums of cnt; one 256-thread block.
extern "C" __global__ void __launch_bounds__(256) ex_csr_scan(const i32* cnt, i32* ptr, i32 n) {
  __shared__ i32 sh[256];
  const i32 t = (i32)ex_tid_x();
  i32 carry = 0;
  for (i32 base = 0; base < n; base += 256) {
    sh[t] = base + t < n ? cnt[base + t] : 0;
    ex_sync();
    for (i32 s = 1; s < 256; s <<= 1) { // inclusive Hillis-Steele scan
      const i32 add = t >= s ? sh[t - s] : 0;
      ex_sync();
      sh[t] += add;
      ex_sync();
    }
    if (base + t < n) ptr[base + t + 1] = carry + sh[t];
    carry += sh[255];
    ex_sync();
  }
  if (t == 0) ptr[0] = 0;
}

// ex_csr_fill writes output o's list: idx (reduction index) and val (W·M;
// for the weight gradient, DW, M itself, with ocol = o and zeros in D at
// the pruned positions).
template <int DW>
EX_DEV void ex_csr_fill(const float* W, const float* Mk, const i32* ptr, i32* idx, float* val, i32* ocol, float* D,
    i32 nout, i32 nred, i64 so, i64 sp) {
  for (i64 o = ex_gtid(); o < nout; o += ex_gstride()) {
    i32 e = ptr[o];
    for (i64 p = 0; p < nred; p++) {
      const i64 i = o * so + p * sp;
      const float m = Mk[i];
      if (m != 0.0f) {
        idx[e] = (i32)p;
        if (DW) { val[e] = m; ocol[e] = (i32)o; }
        else val[e] = W[i] * m;
        e++;
      } else if (DW) {
        D[i] = 0.0f;
      }
    }
  }
}
extern "C" __global__ void __launch_bounds__(256) ex_csr_fill_w(const float* W, const float* Mk, const i32* ptr, i32* idx, float* val,
    i32 nout, i32 nred, i64 so, i64 sp) {
  ex_csr_fill<0>(W, Mk, ptr, idx, val, idx, val, nout, nred, so, sp);
}
extern "C" __global__ void __launch_bounds__(256) ex_csr_fill_dw(const float* Mk, const i32* ptr, i32* idx, float* val, i32* ocol,
    float* D, i32 nout, i32 nred, i64 so, i64 sp) {
  ex_csr_fill<1>(Mk, Mk, ptr, idx, val, ocol, D, nout, nred, so, sp);
}

// ex_csr_spmm: C[b, o] = epilogue(Σ_e val[e]·A[b, idx[e]]) over o's list.
// Block: 8 warps x OUTS outputs, 64 batch rows (lane, lane + 32).
template <int EPI, int ACT, int OUTS, int KC>
EX_DEV void ex_csr_spmm(const float* A, const i32* ptr, const i32* idx, const float* val, const float* E, float* C,
    i32 B, i32 nout, i32 nred) {
  const i32 BR = 64, BO = 8 * OUTS;
  __shared__ float As[KC][BR + 1];
  __shared__ float Cs[BR][BO + 1];
  const i32 tid = (i32)ex_tid_x(), lane = tid % 32, warp = tid / 32;
  const i32 b0 = (i32)ex_bid_y() * BR, o0 = (i32)ex_bid_x() * BO + warp * OUTS;
  float acc[OUTS][2];
  i32 e[OUTS], end[OUTS];
#pragma unroll
  for (i32 q = 0; q < OUTS; q++) {
    acc[q][0] = acc[q][1] = 0.0f;
    const i32 o = o0 + q;
    e[q] = o < nout ? ptr[o] : 0;
    end[q] = o < nout ? ptr[o + 1] : 0;
  }
  for (i32 k0 = 0; k0 < nred; k0 += KC) {
    // Stage A[b0:b0+BR, k0:k0+KC] as As[p][r], reading along A's rows.
    for (i32 x = tid; x < BR * KC; x += 256) {
      const i32 r = x / KC, p = x % KC;
      const i32 gb = b0 + r, gp = k0 + p;
      As[p][r] = (gb < B && gp < nred) ? A[(i64)gb * nred + gp] : 0.0f;
    }
    ex_sync();
    const i32 k1 = k0 + KC;
#pragma unroll
    for (i32 q = 0; q < OUTS; q++) {
      i32 ee = e[q];
      for (; ee < end[q]; ee++) {
        const i32 p = idx[ee];
        if (p >= k1) break;
        const float v = val[ee];
        acc[q][0] += v * As[p - k0][lane];
        acc[q][1] += v * As[p - k0][lane + 32];
      }
      e[q] = ee;
    }
    ex_sync();
  }
#pragma unroll
  for (i32 q = 0; q < OUTS; q++) {
    Cs[lane][warp * OUTS + q] = acc[q][0];
    Cs[lane + 32][warp * OUTS + q] = acc[q][1];
  }
  ex_sync();
  for (i32 x = tid; x < BR * BO; x += 256) {
    const i32 r = x / BO, c = x % BO;
    const i32 b = b0 + r, o = (i32)ex_bid_x() * BO + c;
    if (b < B && o < nout) {
      float v = Cs[r][c];
      if (EPI == 1) v += E[o];
      if (EPI == 2) v = ex_mul_act_grad<ACT>(v, E[(i64)b * nout + o]);
      else v = ex_act<ACT>(v);
      C[(i64)b * nout + o] = v;
    }
  }
}

// ex_csr_sddmm: D[k, j] = M[k, j]·Σ_b X[b, k]·dY[b, j] for every kept
// (k, j) = (idx[e], ocol[e]), e < ptr[cols]; one thread per entry.
extern "C" __global__ void __launch_bounds__(256) ex_csr_sddmm(const float* X, const float* dY, const i32* ptr, const i32* idx,
    const i32* ocol, const float* val, float* D, i32 B, i32 rows, i32 cols) {
  const i64 nnz = ptr[cols];
  for (i64 e = ex_gtid(); e < nnz; e += ex_gstride()) {
    const i64 k = idx[e], j = ocol[e];
    float acc = 0.0f;
    for (i64 b = 0; b < B; b++) acc += X[b * rows + k] * dY[b * cols + j];
    D[k * cols + j] = acc * val[e];
  }
}
`)
}

const (
	csrOuts = 4  // outputs per warp of the SpMM
	csrK    = 64 // reduction indices staged per step
)

// csrLists emits the count, scan and fill launches of the lists of nout
// outputs over nred reduction indices (mask element (o, p) at o·so + p·sp)
// and returns the scratch offsets of ptr, idx, val and ocol. With d set
// (the weight gradient) val holds M and the fill writes ocol and the zeros
// of D; otherwise val holds W·M from *w.
func csrLists(g *gen, w *Arg, d *Arg, nout, nred int, so, sp int64) (ptr, idx, val, ocol int64) {
	nnz := int64(nout) * int64(nred)
	cnt := g.reserve(4 * int64(nout))
	ptr = g.reserve(4 * int64(nout+1))
	idx = g.reserve(4 * nnz)
	val = g.reserve(4 * nnz)
	ocol = -1
	if d != nil {
		ocol = g.reserve(4 * nnz)
	}
	grid := dim(streamChoice(int64(nout)).Int("grid", 1))
	g.emit("ex_csr_count", grid, dim(blockThreads), g.in(2), scratchArg(cnt), i32Arg(nout), i32Arg(nred), i64Arg(so), i64Arg(sp))
	g.emit("ex_csr_scan", dim(1), dim(blockThreads), scratchArg(cnt), scratchArg(ptr), i32Arg(nout))
	if d == nil {
		g.emit("ex_csr_fill_w", grid, dim(blockThreads), *w, g.in(2), scratchArg(ptr), scratchArg(idx), scratchArg(val),
			i32Arg(nout), i32Arg(nred), i64Arg(so), i64Arg(sp))
	} else {
		g.emit("ex_csr_fill_dw", grid, dim(blockThreads), g.in(2), scratchArg(ptr), scratchArg(idx), scratchArg(val), scratchArg(ocol), *d,
			i32Arg(nout), i32Arg(nred), i64Arg(so), i64Arg(sp))
	}
	return ptr, idx, val, ocol
}

func genMaskedCSR(g *gen) error {
	mt := g.inType(2) // the mask: W's shape, rows (in) x cols (out)
	rows, cols := mt.Shape[0], mt.Shape[1]
	batch := g.inType(0).Shape[0]
	g.use("sparse_csr")
	if g.k.Op == "masked_matmul_dw" {
		d := g.out(0)
		ptr, idx, val, ocol := csrLists(g, nil, &d, cols, rows, 1, int64(cols))
		g.emit("ex_csr_sddmm", dim(streamChoice(int64(rows)*int64(cols)).Int("grid", 1)), dim(blockThreads),
			g.in(0), g.in(1), scratchArg(ptr), scratchArg(idx), scratchArg(ocol), scratchArg(val), d,
			i32Arg(batch), i32Arg(rows), i32Arg(cols))
		return nil
	}
	act, epi, extra, err := maskedEpilogue(g)
	if err != nil {
		return err
	}
	w := g.in(1)
	nout, nred, so, sp := cols, rows, int64(1), int64(cols) // forward: lists per column of W
	if g.attrs().Bool("transpose_b", false) {
		nout, nred, so, sp = rows, cols, int64(cols), 1 // input gradient: per row
	}
	ptr, idx, val, _ := csrLists(g, &w, nil, nout, nred, so, sp)
	name := fmt.Sprintf("ex_csr_spmm_%s_%s", []string{"plain", "bias", "grad"}[epi], act)
	src := fmt.Sprintf(`extern "C" __global__ void __launch_bounds__(256) %s(const float* A, const i32* ptr, const i32* idx, const float* val,
    const float* E, float* C, i32 B, i32 nout, i32 nred) {
  ex_csr_spmm<%d, %d, %d, %d>(A, ptr, idx, val, E, C, B, nout, nred);
}
`, name, epi, actNumbers[act], csrOuts, csrK)
	if err := g.entry(name, src); err != nil {
		return err
	}
	bo := 8 * csrOuts
	g.emit(name, dim2((nout+bo-1)/bo, (batch+63)/64), dim(blockThreads),
		g.in(0), scratchArg(ptr), scratchArg(idx), scratchArg(val), extra, g.out(0), i32Arg(batch), i32Arg(nout), i32Arg(nred))
	return nil
}
