package codegen

// Device code of the tiled contrastive_xent_fused (contrastive_fused.go
// launches it). Every kernel computes similarity tiles S[o][t] = X_o·Y_t of
// 64 own rows against 64 other rows (16-deep slabs staged in shared memory,
// 4x4 a thread) and never stores more than a tile; the per-element decisions
// are functions of (row i, column j, S_ij, G_ij) and per-row state of O(N):
//
//	in_den(i, j)  j is in row i's denominator: supcon every j ≠ i; otherwise
//	              the positive p(i) unless decoupled, and every negative
//	              j ∉ {i (one tower), p(i)} the guide keeps (G_ij ≤ G_ip) and
//	              the hard-negative cut keeps (S_ij ≥ thr_i)
//	pos_w(i, j)   1 for a positive (supcon: same label, j ≠ i; else p(i))
//
// so the positives are summed inside the tiles too (Σ pos_w·S and the count
// per row), for every objective alike. Tiles compute each S_ij with the same
// sequence of float operations (k in order, 16 at a time), whichever kernel
// and whichever side, so S_ij ≥ thr_i is decided the same way everywhere.
//
//	ex_ctrf_thresh  (hard_k) thr_i = the hard_k-th largest kept negative
//	                similarity, by a 4-pass 8-bit radix select over the
//	                order-preserving bits of S (counts only: exact and
//	                deterministic), −∞ when no more than hard_k are kept
//	ex_ctrf_fwd     per (row, column split): online log-sum-exp (running max
//	                and rescaled sum), Σ pos_w·S and Σ pos_w
//	ex_ctrf_rows    combines the splits in order: lse, the row's loss term
//	ex_ctrf_bwd_*   recomputes the tiles: W = dS (row side), dSᵀ (column
//	                side, the second tower) or dS + dSᵀ (one tower: S is
//	                symmetric, so one tile serves both), then dz_own += W·Y
//	                in 64-wide slabs of d, and dτ_i += Σ_j dL_ij·S_ij
//	ex_ctrf_sum     adds the column splits' partial gradients in order
//
// No float atomics anywhere: each value has one writer, and every sum runs
// in a fixed order (a thread's columns in order, then the 16 threads of
// a row in lane order through shared memory, then the splits in order).
// Shared memory rather than warp shuffles for that merge: it runs once a
// block, and the host emulator's shuffles are slow.
func init() {
	addFamily("contrastive_tiled", []string{"math"}, contrastiveTiledSrc)
}

const contrastiveTiledSrc = `#define EX_CT_BK 16

// acc[r][c] = X[x0 + ty + r·BM/TM] · Y[y0 + tx + c·BN/TN] over k < d, with
// rows at or past n zero. Ends with a barrier, so Xs and Ys are free again.
template <int BM, int BN, int TM, int TN>
EX_DEV void ex_ctr_sim(const float* X, i64 x0, const float* Y, i64 y0, i64 n, i64 d,
                       float (*Xs)[BM + 1], float (*Ys)[BN + 1], float (&acc)[TM][TN]) {
  const i32 NT = (BM / TM) * (BN / TN);
  const i32 tid = (i32)ex_tid_x();
  const i32 tx = tid % (BN / TN), ty = tid / (BN / TN);
  for (i32 r = 0; r < TM; r++)
    for (i32 c = 0; c < TN; c++) acc[r][c] = 0.0f;
  for (i64 k0 = 0; k0 < d; k0 += EX_CT_BK) {
    for (i32 idx = tid; idx < BM * EX_CT_BK; idx += NT) {
      const i32 i = idx / EX_CT_BK, p = idx % EX_CT_BK;
      const i64 gi = x0 + i, gp = k0 + p;
      Xs[p][i] = (gi < n && gp < d) ? X[gi * d + gp] : 0.0f;
    }
    for (i32 idx = tid; idx < BN * EX_CT_BK; idx += NT) {
      const i32 j = idx / EX_CT_BK, p = idx % EX_CT_BK;
      const i64 gj = y0 + j, gp = k0 + p;
      Ys[p][j] = (gj < n && gp < d) ? Y[gj * d + gp] : 0.0f;
    }
    ex_sync();
    for (i32 p = 0; p < EX_CT_BK; p++) {
      float a[TM], b[TN];
      for (i32 r = 0; r < TM; r++) a[r] = Xs[p][ty + r * (BM / TM)];
      for (i32 c = 0; c < TN; c++) b[c] = Ys[p][tx + c * (BN / TN)];
      for (i32 r = 0; r < TM; r++)
        for (i32 c = 0; c < TN; c++) acc[r][c] += a[r] * b[c];
    }
    ex_sync();
  }
}

// The per-row state. obj: 0 nt_xent, 1 decoupled, 2 supcon, 3 dual.
struct ExCtr {
  const float* inv;   // 1/τ_i
  const float* thr;   // hard-negative threshold (−∞: no cut)
  const float* gpos;  // guide similarity of the positive
  const i32* labels;  // supcon
  const float* lse;   // backward: log-sum-exp
  const float* cnt;   // backward: Σ_j pos_w(i, j)
  const i32* hit;     // backward: the row counts
  i64 n;
  i32 obj, guided;
};

EX_DEV i64 ex_ctr_pos(const ExCtr& c, i64 i) { return c.obj == 3 ? i : (i + c.n / 2) % c.n; }

// A negative that survives the guide, before the hard-negative cut.
EX_DEV bool ex_ctr_kept(const ExCtr& c, i64 i, i64 j, float g) {
  if (j == ex_ctr_pos(c, i) || (c.obj != 3 && j == i)) return false;
  return !(c.guided && g > c.gpos[i]);
}

EX_DEV bool ex_ctr_in_den(const ExCtr& c, i64 i, i64 j, float s, float g) {
  if (c.obj == 2) return j != i;
  if (j == ex_ctr_pos(c, i)) return c.obj != 1;
  return ex_ctr_kept(c, i, j, g) && !(s < c.thr[i]);
}

EX_DEV float ex_ctr_pos_w(const ExCtr& c, i64 i, i64 j) {
  if (c.obj == 2) return (j != i && c.labels[j] == c.labels[i]) ? 1.0f : 0.0f;
  return j == ex_ctr_pos(c, i) ? 1.0f : 0.0f;
}

// dL_ij = dloss/V · (softmax_ij − pos_w/Σpos_w) for a row that counts.
EX_DEV float ex_ctr_dl(const ExCtr& c, float gs, i64 i, i64 j, float s, float g) {
  if (!c.hit[i]) return 0.0f;
  const float e = ex_ctr_in_den(c, i, j, s, g) ? ex_expf(c.inv[i] * s - c.lse[i]) : 0.0f;
  return gs * (e - ex_ctr_pos_w(c, i, j) / c.cnt[i]);
}

// The range of 64-wide column tiles of split y.
EX_DEV void ex_ctr_split(i64 n, i32 splits, i64* lo, i64* hi) {
  const i64 tiles = (n + 63) / 64, y = (i64)ex_bid_y();
  *lo = tiles * y / splits;
  *hi = tiles * (y + 1) / splits;
}

// Row r's online log-sum-exp state (m, s) absorbs (mo, so).
EX_DEV void ex_ctr_lse_merge(float& m, double& s, float mo, double so) {
  const float mn = mo > m ? mo : m;
  const double a = m == -ex_inff() ? 0.0 : s * (double)ex_expf(m - mn);
  const double b = mo == -ex_inff() ? 0.0 : so * (double)ex_expf(mo - mn);
  m = mn;
  s = a + b;
}

// ex_ctrf_thresh: 16 rows a block against every column, four radix passes.
extern "C" __global__ void __launch_bounds__(256) ex_ctrf_thresh(const float* X, const float* Y, const float* GX, const float* GY, i64 dg,
    const float* gpos, float* thr, i64 n, i64 d, i32 obj, i32 guided, i64 K) {
  __shared__ float Xs[EX_CT_BK][17];
  __shared__ float Ys[EX_CT_BK][65];
  __shared__ u32 hist[16][257];
  __shared__ u32 dig[16][65];
  __shared__ u32 pre[16];
  __shared__ i64 krem[16];
  __shared__ i32 cut[16];
  const ExCtr c = {0, 0, gpos, 0, 0, 0, 0, n, obj, guided};
  const i32 tid = (i32)ex_tid_x(), tx = tid % 16, ty = tid / 16;
  const i64 o0 = (i64)ex_bid_x() * 16, o = o0 + ty;
  if (tid < 16) { pre[tid] = 0u; krem[tid] = K; cut[tid] = 1; }
  for (i32 pass = 0; pass < 4; pass++) {
    const i32 shift = 24 - 8 * pass;
    for (i32 idx = tid; idx < 16 * 256; idx += 256) hist[idx / 256][idx % 256] = 0u;
    ex_sync();
    for (i64 t0 = 0; t0 < n; t0 += 64) {
      float s[1][4], g[1][4] = {};
      ex_ctr_sim<16, 64, 1, 4>(X, o0, Y, t0, n, d, Xs, Ys, s);
      if (guided) ex_ctr_sim<16, 64, 1, 4>(GX, o0, GY, t0, n, dg, Xs, Ys, g);
      for (i32 cc = 0; cc < 4; cc++) {
        const i64 t = t0 + tx + cc * 16;
        u32 dv = 0u;
        if (o < n && t < n && ex_ctr_kept(c, o, t, guided ? g[0][cc] : 0.0f)) {
          u32 u = s[0][cc] == 0.0f ? 0u : ex_f2u(s[0][cc]);
          const u32 key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
          if (pass == 0 || (key >> (shift + 8)) == (pre[ty] >> (shift + 8))) dv = ((key >> shift) & 255u) + 1u;
        }
        dig[ty][tx + cc * 16] = dv;
      }
      ex_sync();
      if (tid < 16)
        for (i32 j = 0; j < 64; j++) {
          const u32 v = dig[tid][j];
          if (v) hist[tid][v - 1]++;
        }
      ex_sync();
    }
    if (tid < 16 && cut[tid]) {
      if (pass == 0) {
        i64 total = 0;
        for (i32 b = 0; b < 256; b++) total += hist[tid][b];
        if (total <= K) cut[tid] = 0;
      }
      if (cut[tid]) {
        i64 cum = 0;
        for (i32 b = 255; b >= 0; b--) {
          const i64 h = hist[tid][b];
          if (cum + h >= krem[tid]) {
            krem[tid] -= cum;
            pre[tid] |= (u32)b << shift;
            break;
          }
          cum += h;
        }
      }
    }
    ex_sync();
  }
  if (tid < 16 && o0 + tid < n) {
    const u32 key = pre[tid];
    thr[o0 + tid] = cut[tid] ? ex_u2f((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key) : -ex_inff();
  }
}

// ex_ctrf_fwd: 64 rows (blockIdx.x) against the column tiles of split
// blockIdx.y; the split's row state goes to [split·n + row].
extern "C" __global__ void __launch_bounds__(256) ex_ctrf_fwd(const float* X, const float* Y, const float* GX, const float* GY, i64 dg,
    const float* inv, const float* thr, const float* gpos, const i32* labels,
    float* Mst, double* Sst, double* Pst, float* Cst, i64 n, i64 d, i32 obj, i32 guided, i32 splits) {
  __shared__ float Xs[EX_CT_BK][65];
  __shared__ float Ys[EX_CT_BK][65];
  __shared__ float Mr[64][17], Cr[64][17];
  __shared__ double Sr[64][17], Pr[64][17];
  const ExCtr c = {inv, thr, gpos, labels, 0, 0, 0, n, obj, guided};
  const i32 tid = (i32)ex_tid_x(), tx = tid % 16, ty = tid / 16;
  const i64 o0 = (i64)ex_bid_x() * 64;
  i64 lo, hi;
  ex_ctr_split(n, splits, &lo, &hi);
  float m[4], pc[4];
  double se[4], ps[4];
  for (i32 r = 0; r < 4; r++) { m[r] = -ex_inff(); pc[r] = 0.0f; se[r] = 0.0; ps[r] = 0.0; }
  for (i64 tt = lo; tt < hi; tt++) {
    const i64 t0 = tt * 64;
    float s[4][4], g[4][4] = {};
    ex_ctr_sim<64, 64, 4, 4>(X, o0, Y, t0, n, d, Xs, Ys, s);
    if (guided) ex_ctr_sim<64, 64, 4, 4>(GX, o0, GY, t0, n, dg, Xs, Ys, g);
    for (i32 r = 0; r < 4; r++) {
      const i64 o = o0 + ty + r * 16;
      if (o >= n) continue;
      float l[4], tm = -ex_inff();
      bool in[4];
      for (i32 cc = 0; cc < 4; cc++) {
        const i64 t = t0 + tx + cc * 16;
        in[cc] = false;
        l[cc] = inv[o] * s[r][cc];
        if (t >= n) continue;
        in[cc] = ex_ctr_in_den(c, o, t, s[r][cc], guided ? g[r][cc] : 0.0f);
        if (in[cc] && l[cc] > tm) tm = l[cc];
        const float w = ex_ctr_pos_w(c, o, t);
        if (w != 0.0f) { ps[r] += (double)w * (double)s[r][cc]; pc[r] += w; }
      }
      if (tm > m[r]) {
        se[r] = m[r] == -ex_inff() ? 0.0 : se[r] * (double)ex_expf(m[r] - tm);
        m[r] = tm;
      }
      for (i32 cc = 0; cc < 4; cc++)
        if (in[cc]) se[r] += (double)ex_expf(l[cc] - m[r]);
    }
  }
  // The 16 threads of a row hand their state over in shared memory; one
  // thread a row merges them in lane order.
  for (i32 r = 0; r < 4; r++) {
    const i32 row = ty + r * 16;
    Mr[row][tx] = m[r]; Sr[row][tx] = se[r]; Pr[row][tx] = ps[r]; Cr[row][tx] = pc[r];
  }
  ex_sync();
  if (tid < 64 && o0 + tid < n) {
    float mm = -ex_inff(), cc = 0.0f;
    double ss = 0.0, pp = 0.0;
    for (i32 q = 0; q < 16; q++) {
      ex_ctr_lse_merge(mm, ss, Mr[tid][q], Sr[tid][q]);
      pp += Pr[tid][q];
      cc += Cr[tid][q];
    }
    const i64 at = (i64)ex_bid_y() * n + o0 + tid;
    Mst[at] = mm; Sst[at] = ss; Pst[at] = pp; Cst[at] = cc;
  }
}

// ex_ctrf_rows: a thread per row adds its splits in order.
extern "C" __global__ void __launch_bounds__(256) ex_ctrf_rows(const float* Mst, const double* Sst, const double* Pst, const float* Cst,
    const float* inv, float* lse, float* cnt, i32* hit, double* partial, i64 n, i32 splits) {
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    float m = -ex_inff(), pc = 0.0f;
    double se = 0.0, ps = 0.0;
    for (i32 y = 0; y < splits; y++) {
      ex_ctr_lse_merge(m, se, Mst[y * n + i], Sst[y * n + i]);
      ps += Pst[y * n + i];
      pc += Cst[y * n + i];
    }
    const bool ok = pc > 0.0f && m != -ex_inff() && se > 0.0;
    const double l = ok ? (double)m + ex_log_d(se) : 0.0;
    lse[i] = (float)l;
    cnt[i] = pc;
    hit[i] = ok ? 1 : 0;
    partial[i] = ok ? l - (double)inv[i] * ps / (double)pc : 0.0;
  }
}

// Backward over 64 own rows (blockIdx.x) and the other tiles of split
// blockIdx.y. MODE 0: own = rows (W = dS); 1: own = columns of the second
// tower (W = dSᵀ); 2: one tower (W = dS + dSᵀ). dz (own rows, d wide) is
// this split's slice; dtau (MODE 0, 2) gets Σ_j dL_ij·S_ij per split.
template <int MODE>
EX_DEV void ex_ctrf_bwd(const float* X, const float* Y, const float* GX, const float* GY, i64 dg, const ExCtr& c,
    const float* dloss, const i32* valid, float* dz, double* dtau, i64 d, i32 splits) {
  __shared__ float Ws[64][65];
  __shared__ float Zs[64][65];
  __shared__ double Dt[64][17];
  // The similarity slabs are staged in Zs, which is free until W·Y.
  float (*Xs)[65] = (float (*)[65])&Zs[0][0];
  float (*Ys)[65] = (float (*)[65])&Zs[EX_CT_BK][0];
  const i64 n = c.n;
  const i32 tid = (i32)ex_tid_x(), tx = tid % 16, ty = tid / 16;
  const i64 o0 = (i64)ex_bid_x() * 64;
  const float gs = valid[0] > 0 ? (float)((double)dloss[0] / (double)valid[0]) : 0.0f;
  float* out = dz + (i64)ex_bid_y() * n * d;
  i64 lo, hi;
  ex_ctr_split(n, splits, &lo, &hi);
  double dt[4] = {0.0, 0.0, 0.0, 0.0};
  for (i64 tt = lo; tt < hi; tt++) {
    const i64 t0 = tt * 64;
    float s[4][4], g[4][4] = {};
    ex_ctr_sim<64, 64, 4, 4>(X, o0, Y, t0, n, d, Xs, Ys, s);
    if (c.guided) ex_ctr_sim<64, 64, 4, 4>(GX, o0, GY, t0, n, dg, Xs, Ys, g);
    for (i32 r = 0; r < 4; r++)
      for (i32 cc = 0; cc < 4; cc++) {
        const i64 o = o0 + ty + r * 16, t = t0 + tx + cc * 16;
        float w = 0.0f;
        if (o < n && t < n) {
          const float sv = s[r][cc], gv = c.guided ? g[r][cc] : 0.0f;
          if (MODE != 1) {
            const float dl = ex_ctr_dl(c, gs, o, t, sv, gv);
            w = dl * c.inv[o];
            dt[r] += (double)dl * (double)sv;
          }
          if (MODE != 0) w += ex_ctr_dl(c, gs, t, o, sv, gv) * c.inv[t];
        }
        Ws[ty + r * 16][tx + cc * 16] = w;
      }
    ex_sync();
    for (i64 k0 = 0; k0 < d; k0 += 64) {
      for (i32 idx = tid; idx < 64 * 64; idx += 256) {
        const i32 j = idx / 64, k = idx % 64;
        Zs[j][k] = (t0 + j < n && k0 + k < d) ? Y[(t0 + j) * d + k0 + k] : 0.0f;
      }
      ex_sync();
      float acc[4][4];
      for (i32 r = 0; r < 4; r++)
        for (i32 cc = 0; cc < 4; cc++) acc[r][cc] = 0.0f;
      for (i32 j = 0; j < 64; j++) {
        float a[4], b[4];
        for (i32 r = 0; r < 4; r++) a[r] = Ws[ty + r * 16][j];
        for (i32 cc = 0; cc < 4; cc++) b[cc] = Zs[j][tx + cc * 16];
        for (i32 r = 0; r < 4; r++)
          for (i32 cc = 0; cc < 4; cc++) acc[r][cc] += a[r] * b[cc];
      }
      for (i32 r = 0; r < 4; r++)
        for (i32 cc = 0; cc < 4; cc++) {
          const i64 o = o0 + ty + r * 16, k = k0 + tx + cc * 16;
          if (o < n && k < d) {
            float* p = out + o * d + k;
            *p = tt == lo ? acc[r][cc] : *p + acc[r][cc];
          }
        }
      ex_sync();
    }
  }
  if (MODE != 1) {
    for (i32 r = 0; r < 4; r++) Dt[ty + r * 16][tx] = dt[r];
    ex_sync();
    if (tid < 64 && o0 + tid < n) {
      double v = 0.0;
      for (i32 q = 0; q < 16; q++) v += Dt[tid][q];
      dtau[(i64)ex_bid_y() * n + o0 + tid] = v;
    }
  }
}

#define EX_CTRF_BWD(NAME, MODE) \
extern "C" __global__ void __launch_bounds__(256) NAME(const float* X, const float* Y, const float* GX, const float* GY, i64 dg, \
    const float* inv, const float* thr, const float* gpos, const i32* labels, const float* lse, const float* cnt, const i32* hit, \
    const float* dloss, const i32* valid, float* dz, double* dtau, i64 n, i64 d, i32 obj, i32 guided, i32 splits) { \
  const ExCtr c = {inv, thr, gpos, labels, lse, cnt, hit, n, obj, guided}; \
  ex_ctrf_bwd<MODE>(X, Y, GX, GY, dg, c, dloss, valid, dz, dtau, d, splits); \
}
EX_CTRF_BWD(ex_ctrf_bwd_rows, 0)
EX_CTRF_BWD(ex_ctrf_bwd_cols, 1)
EX_CTRF_BWD(ex_ctrf_bwd_sym, 2)
#undef EX_CTRF_BWD

// ex_ctrf_sum: Y[i] = Σ_y P[y·count + i], the splits in order.
extern "C" __global__ void __launch_bounds__(256) ex_ctrf_sum(const float* P, float* Y, i64 count, i32 splits) {
  for (i64 i = ex_gtid(); i < count; i += ex_gstride()) {
    float s = P[i];
    for (i32 y = 1; y < splits; y++) s += P[y * count + i];
    Y[i] = s;
  }
}

// ex_ctrf_dtau: Y[i] = Σ_y P[y·n + i] in float64, then rounded.
extern "C" __global__ void __launch_bounds__(256) ex_ctrf_dtau(const double* P, float* Y, i64 n, i32 splits) {
  for (i64 i = ex_gtid(); i < n; i += ex_gstride()) {
    double s = 0.0;
    for (i32 y = 0; y < splits; y++) s += P[y * n + i];
    Y[i] = (float)s;
  }
}

// ex_ctrf_prep: a warp per row: 1/τ_i, thr_i = −∞, the guide similarity of
// the positive (float64 sum), and the supcon label check.
extern "C" __global__ void __launch_bounds__(256) ex_ctrf_prep(const float* tau_in, i32 tau_mode, float fixed_inv, float* inv, float* thr,
    const float* GA, const float* GB, i64 dg, i32 guided, float* gpos, const i32* labels, i32 classes, i32 obj,
    i32* status, i32 code, i64 n) {
  const i64 r = (i64)ex_bid_x() * 8 + ex_tid_x() / 32;
  const i32 lane = (i32)(ex_tid_x() % 32);
  if (r >= n) return;
  if (lane == 0) {
    inv[r] = tau_mode == 0 ? fixed_inv : tau_in[tau_mode == 1 ? 0 : r];
    thr[r] = -ex_inff();
    if (obj == 2 && (labels[r] < 0 || labels[r] >= classes)) ex_fail(status, code);
  }
  if (guided) {
    const i64 p = obj == 3 ? r : (r + n / 2) % n;
    double s = 0.0;
    for (i64 k = lane; k < dg; k += 32) s += (double)GA[r * dg + k] * (double)GB[p * dg + k];
    s = ex_warp_sum_d(s);
    if (lane == 0) gpos[r] = (float)s;
  }
}
`
