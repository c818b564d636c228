package codegen

// The device math library. Float32 functions follow backends/cpu/gemm's
// formulas (so a GPU activation agrees with the CPU one to an ulp or two);
// float64 functions are Go's math.Log, math.Cos and math.Pow, operation for
// operation with exactly rounded, never-fused arithmetic, so they return the
// bits Go returns (mathlib_test.go runs the same sequences in Go against the
// math package).
func init() {
	addFamily("math", nil, `// 2^k for -126 <= k <= 127.
EX_DEV float ex_pow2i(i32 k) { return ex_u2f((u32)(k + 127) << 23); }

// e^x in float32 (about 1 ulp): Cody-Waite reduction by ln 2 and a Taylor
// polynomial, as backends/cpu/gemm computes it. Below the normal range the
// result flushes to 0; above ln(FLT_MAX) it is +Inf.
EX_DEV float ex_expf(float x) {
  if (!(x > -87.33654f)) return x != x ? x : 0.0f;
  if (x > 88.7228317f) return ex_inff();
  float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  i32 k = (i32)kf;
  return k > 127 ? p * ex_pow2i(k - 1) * 2.0f : p * ex_pow2i(k);
}

// e^x - 1 for -18 <= x <= 0 (what ex_tanhf needs), keeping relative
// precision near 0.
EX_DEV float ex_expm1f(float x) {
  float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float q = r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320))))))));
  if (kf == 0.0f) return q;
  float s = ex_pow2i((i32)kf);
  return s * q + (s - 1.0f);
}

EX_DEV float ex_tanhf(float x) {
  float ax = ex_fabsf(x);
  if (!(ax < 9.0f)) {
    if (ax != ax) return x;
    return ex_u2f(0x3f800000u | (ex_f2u(x) & 0x80000000u));
  }
  float t = ex_expm1f(-2.0f * ax);
  float r = -t / (t + 2.0f);
  return x < 0.0f ? -r : r;
}

EX_DEV float ex_sigmoidf(float x) { return 1.0f / (1.0f + ex_expf(-x)); }

// -2u for GELU's tanh form: GELU(x) = x / (1 + e^(-2u)),
// u = sqrt(2/pi) (x + 0.044715 x^3).
EX_DEV float ex_gelu_arg(float x) { return -2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x); }

// Activations by number, in backends/cpu/gemm.Act order:
// 0 none, 1 relu, 2 gelu, 3 tanh, 4 sigmoid.
template <int ACT> EX_DEV float ex_act(float x) {
  if (ACT == 1) return (x > 0.0f || x != x) ? x : 0.0f;  // max(x, 0), NaN passes
  if (ACT == 2) return x / (1.0f + ex_expf(ex_gelu_arg(x)));
  if (ACT == 3) return ex_tanhf(x);
  if (ACT == 4) return ex_sigmoidf(x);
  return x;
}

// act'(x). sigma(1 - sigma) is computed as e sigma^2 with e = e^-x, which
// does not cancel; the clamps keep e and x^3 finite where the result is
// 0 or 1 to float32 precision anyway.
template <int ACT> EX_DEV float ex_act_grad(float x) {
  if (ACT == 1) return x > 0.0f ? 1.0f : 0.0f;
  if (ACT == 2) {
    float c = x < -10.0f ? -10.0f : (x > 10.0f ? 10.0f : x);
    float e = ex_expf(ex_gelu_arg(c));
    float s = 1.0f / (1.0f + e);
    return s + 2.0f * 0.7978845608028654f * c * (e * s * s) * (1.0f + 3.0f * 0.044715f * c * c);
  }
  if (ACT == 3) { float t = ex_tanhf(x); return 1.0f - t * t; }
  if (ACT == 4) {
    float e = ex_expf(-(x < -80.0f ? -80.0f : x));
    float s = 1.0f / (1.0f + e);
    return e * s * s;
  }
  return 1.0f;
}

// g * act'(pre); for relu a select, so that g = Inf or NaN where pre <= 0
// still gives 0 (as the CPU backend does).
template <int ACT> EX_DEV float ex_mul_act_grad(float g, float pre) {
  if (ACT == 0) return g;
  if (ACT == 1) return pre > 0.0f ? g : 0.0f;
  return g * ex_act_grad<ACT>(pre);
}

// Go's math.Log on amd64 (FreeBSD's e_log.c in assembly), with the same
// operations in the same order. Frexp is done on the bits: the argument is
// never subnormal here (float32 values and RNG draws >= 2^-24).
EX_DEV double ex_log_d(double x) {
  u64 bx = ex_d2u(x);
  if ((bx & 0x7fffffffffffffffull) == 0) return ex_ninf_d();
  if (bx >> 63) return ex_nan_d();
  if ((bx >> 52) >= 0x7ffull) return x;
  double f1 = ex_u2d((bx & 0x000fffffffffffffull) | 0x3fe0000000000000ull);
  double k = (double)((i32)((bx >> 52) & 0x7ff) - 0x3fe);
  if (!(0.70710678118654757 < f1)) { k = ex_dsub(k, 1.0); f1 = ex_dmul(f1, 2.0); }
  double f = ex_dsub(f1, 1.0);
  double s = ex_ddiv(f, ex_dadd(2.0, f));
  double s2 = ex_dmul(s, s);
  double s4 = ex_dmul(s2, s2);
  double t1 = ex_dmul(s2, ex_dadd(6.666666666666735130e-01, ex_dmul(s4, ex_dadd(2.857142874366239149e-01,
      ex_dmul(s4, ex_dadd(1.818357216161805012e-01, ex_dmul(s4, 1.479819860511658591e-01)))))));
  double t2 = ex_dmul(s4, ex_dadd(3.999999999940941908e-01, ex_dmul(s4, ex_dadd(2.222219843214978396e-01,
      ex_dmul(s4, 1.531383769920937332e-01)))));
  double R = ex_dadd(t1, t2);
  double hfsq = ex_dmul(ex_dmul(0.5, f), f);
  return ex_dsub(ex_dmul(k, 6.93147180369123816490e-01),
      ex_dsub(ex_dsub(hfsq, ex_dadd(ex_dmul(s, ex_dadd(hfsq, R)), ex_dmul(k, 1.90821492927058770002e-10))), f));
}

// log of a float32, as the CPU backend computes it: float32(math.Log(float64(x))).
EX_DEV float ex_logf(float x) { return (float)ex_log_d((double)x); }

// Go's math.Cos (Cephes) for |x| < 2^29, the range without Payne-Hanek
// reduction; callers pass [0, 2 pi].
EX_DEV double ex_cos_d(double x) {
  x = ex_u2d(ex_d2u(x) & 0x7fffffffffffffffull);
  if (!(x < 536870912.0)) return ex_nan_d();
  u64 j = (u64)ex_dmul(x, 1.2732395447351628);
  double y = (double)j;
  if (j & 1) { j++; y = ex_dadd(y, 1.0); }
  j &= 7;
  double z = ex_dsub(ex_dsub(ex_dsub(x, ex_dmul(y, 7.85398125648498535156e-1)), ex_dmul(y, 3.77489470793079817668e-8)),
      ex_dmul(y, 2.69515142907905952645e-15));
  bool sign = false;
  if (j > 3) { j -= 4; sign = !sign; }
  if (j > 1) sign = !sign;
  double zz = ex_dmul(z, z);
  if (j == 1 || j == 2) {
    double p = ex_dmul(1.58962301576546568060e-10, zz);
    p = ex_dmul(ex_dadd(p, -2.50507477628578072866e-8), zz);
    p = ex_dmul(ex_dadd(p, 2.75573136213857245213e-6), zz);
    p = ex_dmul(ex_dadd(p, -1.98412698295895385996e-4), zz);
    p = ex_dmul(ex_dadd(p, 8.33333333332211858878e-3), zz);
    p = ex_dadd(p, -1.66666666666666307295e-1);
    y = ex_dadd(z, ex_dmul(ex_dmul(z, zz), p));
  } else {
    double p = ex_dmul(-1.13585365213876817300e-11, zz);
    p = ex_dmul(ex_dadd(p, 2.08757008419747316778e-9), zz);
    p = ex_dmul(ex_dadd(p, -2.75573141792967388112e-7), zz);
    p = ex_dmul(ex_dadd(p, 2.48015872888517045348e-5), zz);
    p = ex_dmul(ex_dadd(p, -1.38888888888730564116e-3), zz);
    p = ex_dadd(p, 4.16666666666665929218e-2);
    y = ex_dadd(ex_dsub(1.0, ex_dmul(0.5, zz)), ex_dmul(ex_dmul(zz, zz), p));
  }
  return sign ? -y : y;
}

// b^n for n >= 0 by binary powering: Go's math.Pow for an integral
// exponent multiplies the same mantissas in the same order.
EX_DEV double ex_powi_d(double b, i64 n) {
  double r = 1.0;
  for (; n > 0; n >>= 1) {
    if (n & 1) r = ex_dmul(r, b);
    b = ex_dmul(b, b);
  }
  return r;
}
`)
}
