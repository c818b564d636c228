package codegen

// prelude opens every unit. One source compiles under NVRTC and nvcc (both
// define __CUDACC__; NVRTC also __CUDACC_RTC__) and under bare clang
// (-x cuda --cuda-device-only -nocudainc, which defines __CUDA__ and
// __CUDA_ARCH__ but includes no CUDA header). Kernels call only the ex_*
// helpers defined here, so a stray expf or threadIdx fails the clang check
// instead of compiling into an unresolved .extern.
//
// Exact float64 arithmetic (ex_dadd, ex_dmul, ...) is inline PTX with an
// explicit rounding mode: ptxas never contracts such instructions into an
// FMA, so the RNG and the learning-rate schedule round exactly as Go does.
const prelude = `#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define EX_NATIVE 1
#elif defined(__clang__) && defined(__CUDA__) && defined(__CUDA_ARCH__)
#define EX_NATIVE 0
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __launch_bounds__(n) __attribute__((launch_bounds(n)))
#else
#error "expc: compile with NVRTC, nvcc, or clang -x cuda --cuda-device-only -nocudainc"
#endif

typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#define EX_DEV static __device__ __forceinline__
#define EX_FULL_MASK 0xffffffffu

#if EX_NATIVE
EX_DEV u32 ex_tid_x() { return threadIdx.x; }
EX_DEV u32 ex_bid_x() { return blockIdx.x; }
EX_DEV u32 ex_bid_y() { return blockIdx.y; }
EX_DEV u32 ex_bdim_x() { return blockDim.x; }
EX_DEV u32 ex_gdim_x() { return gridDim.x; }
EX_DEV void ex_sync() { __syncthreads(); }
EX_DEV i32 ex_shfl_xor_i(i32 v, i32 m) { return __shfl_xor_sync(EX_FULL_MASK, v, m); }
EX_DEV float ex_shfl_xor_f(float v, i32 m) { return __shfl_xor_sync(EX_FULL_MASK, v, m); }
EX_DEV u32 ex_f2u(float x) { return __float_as_uint(x); }
EX_DEV float ex_u2f(u32 x) { return __uint_as_float(x); }
EX_DEV u64 ex_d2u(double x) { return (u64)__double_as_longlong(x); }
EX_DEV double ex_u2d(u64 x) { return __longlong_as_double((i64)x); }
EX_DEV i32 ex_atomic_cas_i(i32* p, i32 cmp, i32 v) { return atomicCAS(p, cmp, v); }
#else
EX_DEV u32 ex_tid_x() { return __nvvm_read_ptx_sreg_tid_x(); }
EX_DEV u32 ex_bid_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
EX_DEV u32 ex_bid_y() { return __nvvm_read_ptx_sreg_ctaid_y(); }
EX_DEV u32 ex_bdim_x() { return __nvvm_read_ptx_sreg_ntid_x(); }
EX_DEV u32 ex_gdim_x() { return __nvvm_read_ptx_sreg_nctaid_x(); }
EX_DEV void ex_sync() { __syncthreads(); }
EX_DEV i32 ex_shfl_xor_i(i32 v, i32 m) { return __nvvm_shfl_sync_bfly_i32(EX_FULL_MASK, v, m, 31); }
EX_DEV float ex_shfl_xor_f(float v, i32 m) { return __nvvm_shfl_sync_bfly_f32(EX_FULL_MASK, v, m, 31); }
EX_DEV u32 ex_f2u(float x) { return __builtin_bit_cast(u32, x); }
EX_DEV float ex_u2f(u32 x) { return __builtin_bit_cast(float, x); }
EX_DEV u64 ex_d2u(double x) { return __builtin_bit_cast(u64, x); }
EX_DEV double ex_u2d(u64 x) { return __builtin_bit_cast(double, x); }
EX_DEV i32 ex_atomic_cas_i(i32* p, i32 cmp, i32 v) { return __nvvm_atom_cas_gen_i(p, cmp, v); }
#endif

// Exactly rounded float64 arithmetic, never contracted.
EX_DEV double ex_dadd(double a, double b) { double r; asm("add.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(a), "d"(b)); return r; }
EX_DEV double ex_dsub(double a, double b) { double r; asm("sub.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(a), "d"(b)); return r; }
EX_DEV double ex_dmul(double a, double b) { double r; asm("mul.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(a), "d"(b)); return r; }
EX_DEV double ex_ddiv(double a, double b) { double r; asm("div.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(a), "d"(b)); return r; }
EX_DEV double ex_dsqrt(double a) { double r; asm("sqrt.rn.f64 %0, %1;" : "=d"(r) : "d"(a)); return r; }
// The correctly rounded float32 square root (as Go's float32(math.Sqrt(float64(x)))).
EX_DEV float ex_fsqrt(float a) { float r; asm("sqrt.rn.f32 %0, %1;" : "=f"(r) : "f"(a)); return r; }

EX_DEV float ex_fabsf(float x) { return ex_u2f(ex_f2u(x) & 0x7fffffffu); }
EX_DEV float ex_inff() { return ex_u2f(0x7f800000u); }
EX_DEV double ex_nan_d() { return ex_u2d(0x7ff8000000000001ull); }
EX_DEV double ex_ninf_d() { return ex_u2d(0xfff0000000000000ull); }
EX_DEV i64 ex_gtid() { return (i64)ex_bid_x() * ex_bdim_x() + ex_tid_x(); }
EX_DEV i64 ex_gstride() { return (i64)ex_bdim_x() * ex_gdim_x(); }

// Warp reductions by butterfly: every lane ends with the same bits, since
// each pairwise sum is commutative.
EX_DEV double ex_shfl_xor_d(double v, i32 m) {
  u64 b = ex_d2u(v);
  u32 lo = (u32)ex_shfl_xor_i((i32)(u32)b, m);
  u32 hi = (u32)ex_shfl_xor_i((i32)(u32)(b >> 32), m);
  return ex_u2d(((u64)hi << 32) | lo);
}
EX_DEV double ex_warp_sum_d(double v) {
  for (i32 m = 16; m > 0; m >>= 1) v += ex_shfl_xor_d(v, m);
  return v;
}
EX_DEV i32 ex_warp_sum_i(i32 v) {
  for (i32 m = 16; m > 0; m >>= 1) v += ex_shfl_xor_i(v, m);
  return v;
}
// ex_warp_max_f propagates NaN, so that every lane agrees.
EX_DEV float ex_warp_max_f(float v) {
  for (i32 m = 16; m > 0; m >>= 1) { float o = ex_shfl_xor_f(v, m); v = (o > v || o != o) ? o : v; }
  return v;
}

// ex_fail records the first kernel error in the status word.
EX_DEV void ex_fail(i32* status, i32 code) { ex_atomic_cas_i(status, 0, code); }
`

// PreludeSource is the text every unit opens with (for tools that replace
// it, such as the host emulator in backends/cuda/hostsim).
func PreludeSource() string { return prelude }
