package codegen

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
	"github.com/expc-dev/expc/backends/rng"
)

// The device math and RNG are checked without a GPU by compiling the very
// source text of the "math" and "rng" families for the host, with clang,
// behind a host version of the prelude's helpers (exactly rounded scalar
// arithmetic, no contraction), and comparing with Go: float64 log, cos and
// integer powers bit for bit against the math package, parameter draws bit
// for bit against backends/rng, and the float32 activations against
// backends/cpu/gemm within a few ulps (the GPU may contract a·b+c into an
// FMA, so those are not bit-exact anyway).

const hostPrelude = `typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;
#define EX_DEV static inline
#define __global__
#define __launch_bounds__(n)
extern "C" int printf(const char*, ...);
extern "C" int scanf(const char*, ...);
EX_DEV u32 ex_f2u(float x) { return __builtin_bit_cast(u32, x); }
EX_DEV float ex_u2f(u32 x) { return __builtin_bit_cast(float, x); }
EX_DEV u64 ex_d2u(double x) { return __builtin_bit_cast(u64, x); }
EX_DEV double ex_u2d(u64 x) { return __builtin_bit_cast(double, x); }
EX_DEV double ex_dadd(double a, double b) { return a + b; }
EX_DEV double ex_dsub(double a, double b) { return a - b; }
EX_DEV double ex_dmul(double a, double b) { return a * b; }
EX_DEV double ex_ddiv(double a, double b) { return a / b; }
EX_DEV double ex_dsqrt(double a) { return __builtin_sqrt(a); }
EX_DEV float ex_fabsf(float x) { return ex_u2f(ex_f2u(x) & 0x7fffffffu); }
EX_DEV float ex_inff() { return ex_u2f(0x7f800000u); }
EX_DEV double ex_nan_d() { return ex_u2d(0x7ff8000000000001ull); }
EX_DEV double ex_ninf_d() { return ex_u2d(0xfff0000000000000ull); }
EX_DEV i64 ex_gtid() { return 0; }
EX_DEV i64 ex_gstride() { return 1; }
`

const hostMain = `
static float buf[1 << 16];
int main() {
  char op[32];
  u64 a, b;
  while (scanf("%31s %llx %llx", op, &a, &b) == 3) {
    if (!__builtin_strcmp(op, "log")) printf("%llx\n", ex_d2u(ex_log_d(ex_u2d(a))));
    else if (!__builtin_strcmp(op, "cos")) printf("%llx\n", ex_d2u(ex_cos_d(ex_u2d(a))));
    else if (!__builtin_strcmp(op, "powi")) printf("%llx\n", ex_d2u(ex_powi_d(ex_u2d(a), (i64)b)));
    else if (!__builtin_strcmp(op, "expf")) printf("%x\n", ex_f2u(ex_expf(ex_u2f((u32)a))));
    else if (!__builtin_strcmp(op, "act")) {
      float x = ex_u2f((u32)a), y = 0;
      switch (b) {
        case 1: y = ex_act<1>(x); break; case 2: y = ex_act<2>(x); break;
        case 3: y = ex_act<3>(x); break; case 4: y = ex_act<4>(x); break;
        case 11: y = ex_act_grad<1>(x); break; case 12: y = ex_act_grad<2>(x); break;
        case 13: y = ex_act_grad<3>(x); break; case 14: y = ex_act_grad<4>(x); break;
      }
      printf("%x\n", ex_f2u(y));
    } else if (!__builtin_strcmp(op, "normal") || !__builtin_strcmp(op, "uniform")) {
      // seed a, scale 0.5, b values
      if (op[0] == 'n') ex_init_normal(buf, a, 0.5, (i64)b); else ex_init_uniform(buf, a, 0.5, (i64)b);
      for (u64 i = 0; i < b; i++) printf("%x\n", ex_f2u(buf[i]));
    }
  }
  return 0;
}
`

// hostMath builds the host program once per test.
func hostMath(t *testing.T) string {
	t.Helper()
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	dir := t.TempDir()
	src := hostPrelude + families["math"].src + families["rng"].src + hostMain
	in, out := filepath.Join(dir, "host.cc"), filepath.Join(dir, "host")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(clang, "-x", "c++", "-std=c++17", "-O2", "-ffp-contract=off", "-fno-exceptions", "-fno-math-errno", in, "-o", out, "-lm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling the device math for the host: %v\n%s", err, msg)
	}
	return out
}

// runHost feeds "op a b" lines and returns one hex result per output line.
func runHost(t *testing.T, bin string, lines []string) []uint64 {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	var res []uint64
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		v, err := strconv.ParseUint(sc.Text(), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, v)
	}
	return res
}

func TestDeviceMathMatchesGo(t *testing.T) {
	bin := hostMath(t)
	r := rand.New(rand.NewPCG(1, 2))
	var lines []string
	var want []uint64
	var what []string
	add := func(op string, a, b uint64, w uint64, desc string) {
		lines = append(lines, fmt.Sprintf("%s %x %x", op, a, b))
		want = append(want, w)
		what = append(what, desc)
	}
	for i := 0; i < 20000; i++ {
		// log: RNG draws in (0, 1] and values over the whole positive range.
		u := float64(r.Uint64()>>40+1) / (1 << 24)
		add("log", math.Float64bits(u), 0, math.Float64bits(math.Log(u)), fmt.Sprintf("log(%v)", u))
		x := math.Exp(r.NormFloat64() * 50)
		add("log", math.Float64bits(x), 0, math.Float64bits(math.Log(x)), fmt.Sprintf("log(%v)", x))
		c := r.Float64() * 2 * math.Pi
		add("cos", math.Float64bits(c), 0, math.Float64bits(math.Cos(c)), fmt.Sprintf("cos(%v)", c))
		c = r.Float64() * math.Pi
		add("cos", math.Float64bits(c), 0, math.Float64bits(math.Cos(c)), fmt.Sprintf("cos(%v)", c))
	}
	for _, b := range []float64{0.9, 0.99, 0.999, 0.95, 0.5, 0.123456789} {
		for _, n := range []int64{1, 2, 3, 7, 10, 100, 1000, 4679, 12345, 100000, 1 << 20} {
			add("powi", math.Float64bits(b), uint64(n), math.Float64bits(math.Pow(b, float64(n))), fmt.Sprintf("%v^%d", b, n))
		}
	}
	for _, x := range []float64{0, -0.0, 1, math.Inf(1), math.NaN(), -1} {
		add("log", math.Float64bits(x), 0, math.Float64bits(math.Log(x)), fmt.Sprintf("log(%v)", x))
	}
	got := runHost(t, bin, lines)
	if len(got) != len(want) {
		t.Fatalf("host program gave %d results for %d inputs", len(got), len(want))
	}
	bad := 0
	for i := range want {
		w, g := math.Float64frombits(want[i]), math.Float64frombits(got[i])
		if got[i] != want[i] && !(math.IsNaN(w) && math.IsNaN(g)) {
			if bad++; bad <= 10 {
				t.Errorf("%s: device %v (%#x), Go %v (%#x)", what[i], g, got[i], w, want[i])
			}
		}
	}
}

func TestDeviceRNGMatchesCPU(t *testing.T) {
	bin := hostMath(t)
	const n = 1 << 14
	for _, seed := range []uint64{1, 0x3beaf73f245fc7a2, 12345} {
		normal := runHost(t, bin, []string{fmt.Sprintf("normal %x %x", seed, n)})
		uniform := runHost(t, bin, []string{fmt.Sprintf("uniform %x %x", seed, n)})
		wantN, wantU := make([]float32, n), make([]float32, n)
		rng.FillNormal(wantN, seed, 0, 0.5)
		rng.FillUniform(wantU, seed, 0, 0.5)
		diff := 0
		for i := range n {
			if uint32(normal[i]) != math.Float32bits(wantN[i]) || uint32(uniform[i]) != math.Float32bits(wantU[i]) {
				if diff++; diff <= 5 {
					t.Errorf("seed %#x draw %d: device normal %v uniform %v, cpu %v %v", seed, i,
						math.Float32frombits(uint32(normal[i])), math.Float32frombits(uint32(uniform[i])), wantN[i], wantU[i])
				}
			}
		}
	}
}

// The float32 activations agree with the CPU backend's within 4 ulps (or
// 2.5e-7 absolute, for results that cancel terms of size ~1), and e^x with
// the correctly rounded value.
func TestDeviceActivationsMatchCPU(t *testing.T) {
	bin := hostMath(t)
	r := rand.New(rand.NewPCG(3, 4))
	acts := []gemm.Act{gemm.ReLU, gemm.GELU, gemm.Tanh, gemm.Sigmoid}
	var lines []string
	var want []float32
	var what []string
	for i := 0; i < 4000; i++ {
		x := float32(r.NormFloat64() * 4)
		if i%10 == 0 {
			x = float32(r.NormFloat64() * 40)
		}
		for ai, act := range acts {
			lines = append(lines, fmt.Sprintf("act %x %x", math.Float32bits(x), ai+1))
			want = append(want, gemm.ActForward(act, x))
			what = append(what, fmt.Sprintf("%v(%v)", act, x))
			lines = append(lines, fmt.Sprintf("act %x %x", math.Float32bits(x), ai+11))
			want = append(want, gemm.ActGrad(act, x))
			what = append(what, fmt.Sprintf("%v'(%v)", act, x))
		}
		e := x * 2
		lines = append(lines, fmt.Sprintf("expf %x 0", math.Float32bits(e)))
		want = append(want, float32(math.Exp(float64(e))))
		what = append(what, fmt.Sprintf("exp(%v)", e))
	}
	got := runHost(t, bin, lines)
	if len(got) != len(want) {
		t.Fatalf("host program gave %d results for %d inputs", len(got), len(want))
	}
	bad := 0
	for i, w := range want {
		g := math.Float32frombits(uint32(got[i]))
		if !closeULP(g, w, 4) {
			if bad++; bad <= 10 {
				t.Errorf("%s: device %v, cpu %v", what[i], g, w)
			}
		}
	}
}

func closeULP(a, b float32, ulps int32) bool {
	if a == b || (a != a && b != b) {
		return true
	}
	// Near a zero of the function (GELU' at -0.75) both sides cancel terms of
	// size ~1: compare against that scale there.
	if math.Abs(float64(a-b)) <= 2.5e-7 {
		return true
	}
	ia, ib := int32(math.Float32bits(a)), int32(math.Float32bits(b))
	if (ia < 0) != (ib < 0) {
		return false
	}
	d := ia - ib
	return d <= ulps && d >= -ulps
}
