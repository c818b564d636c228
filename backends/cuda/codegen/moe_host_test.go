package codegen_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu"
	. "github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
)

const hostThreads = `#define __shared__
EX_DEV u32 ex_tid_x() { return 0; }
EX_DEV u32 ex_bid_x() { return 0; }
EX_DEV u32 ex_bdim_x() { return 1; }
EX_DEV u32 ex_gdim_x() { return 1; }
EX_DEV void ex_sync() {}
EX_DEV float ex_fsqrt(float a) { return __builtin_sqrtf(a); }
EX_DEV i32 ex_atomic_cas_i(i32* p, i32 c, i32 v) { i32 o = *p; if (o == c) *p = v; return o; }
EX_DEV void ex_fail(i32* status, i32 code) { ex_atomic_cas_i(status, 0, code); }
struct P { char* p; template <class T> operator T*() const { return (T*)p; } };
`

// TestMoEKernelsOnHost runs the generated MoE kernels without a GPU: the
// unit's own source behind the host prelude, every launch called in order
// as a plain function on one thread (grid-stride and block-stride loops
// then cover everything), against the CPU backend on the kerneltest cases.
// It checks indexing and numerics; races between threads are not covered.
func TestMoEKernelsOnHost(t *testing.T) {
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	dir := t.TempDir()
	for ci, c := range kerneltest.Cases() {
		if !strings.HasPrefix(c.Op, "moe_") {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			checkOnHost(t, clang, cpu.New(1), dir, ci, c)
		})
	}
}

// hostThreads are the prelude's thread helpers for one host thread.
func checkOnHost(t *testing.T, clang string, cb backends.Backend, dir string, ci int, c kerneltest.Case) {
	plan, err := c.Plan("cuda")
	if err != nil {
		t.Fatal(err)
	}
	u, err := Generate(plan)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	src := u.Source[strings.Index(u.Source, Prelude)+len(Prelude):]
	// The one inline PTX outside the prelude: a float32 product that
	// must not be contracted (the host build uses -ffp-contract=off).
	const fmul = `{ float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }`
	if strings.Contains(src, "ex_moe_fmul") && !strings.Contains(src, fmul) {
		t.Fatal("ex_moe_fmul changed: update the host replacement")
	}
	src = strings.ReplaceAll(src, fmul, `{ return a * b; }`)
	var sb strings.Builder
	sb.WriteString(HostPrelude + hostThreads + src)
	arena := plan.Memory.ArenaBytes
	fmt.Fprintf(&sb, "\n#include <stdio.h>\n#include <stdlib.h>\nint main() {\n  char* arena = (char*)calloc(%d, 1); char* scratch = (char*)calloc(%d, 1);\n", arena, u.ScratchBytes+StatusBytes)
	fmt.Fprintf(&sb, "  fread(arena, 1, %d, stdin);\n  for (int i = 0; i < %d; i++) scratch[i] = (char)0xAB;\n  *(i32*)scratch = 0;\n", arena, u.ScratchBytes+StatusBytes)
	for _, l := range u.Program["train"] {
		var as []string
		for _, a := range l.Args {
			switch a.Kind {
			case ArgBuffer:
				as = append(as, fmt.Sprintf("P{arena + %d}", plan.Buffers[a.Buffer].Offset))
			case ArgScratch:
				as = append(as, fmt.Sprintf("P{scratch + %d}", a.Offset))
			case ArgStatus:
				as = append(as, "P{scratch}")
			case ArgI32, ArgI64:
				as = append(as, fmt.Sprintf("%dLL", a.Int))
			case ArgF32:
				as = append(as, fmt.Sprintf("(float)%s", strconvHex(float64(a.F32))))
			case ArgF64:
				as = append(as, strconvHex(a.F64))
			}
		}
		fmt.Fprintf(&sb, "  %s(%s);\n", l.Entry, strings.Join(as, ", "))
	}
	fmt.Fprintf(&sb, "  fwrite(arena, 1, %d, stdout);\n  return 0;\n}\n", arena)
	in := filepath.Join(dir, fmt.Sprintf("c%d.cc", ci))
	bin := filepath.Join(dir, fmt.Sprintf("c%d", ci))
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(clang, "-x", "c++", "-std=c++17", "-O0", "-ffp-contract=off", "-w", in, "-o", bin, "-lm").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", c.Name, err, out)
	}
	// Inputs: fill a byte arena.
	mem := make([]byte, arena)
	f32 := func(id int) []float32 {
		b := plan.Buffers[id]
		return unsafe.Slice((*float32)(unsafe.Pointer(&mem[b.Offset])), b.Bytes/4)
	}
	i32 := func(id int) []int32 {
		b := plan.Buffers[id]
		return unsafe.Slice((*int32)(unsafe.Pointer(&mem[b.Offset])), b.Bytes/4)
	}
	c.FillInputs(uint64(ci)+7, f32, i32, plan)
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(mem)
	got, err := cmd.Output()
	if err != nil || len(got) != int(arena) {
		t.Fatalf("%s: run: %v (%d bytes)", c.Name, err, len(got))
	}
	// CPU reference.
	cplan, _ := c.Plan("cpu")
	x, err := cb.Prepare(cplan)
	if err != nil {
		t.Fatal(err)
	}
	c.FillInputs(uint64(ci)+7, x.F32, x.I32, cplan)
	if err := x.Run("train"); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for _, o := range cplan.Programs[0].Outputs {
		b := plan.Buffers[o.Buffer]
		var gv, cv []float32
		if v := x.F32(o.Buffer); v != nil {
			cv = append(cv, v...)
			for i := range v {
				gv = append(gv, math.Float32frombits(binary.LittleEndian.Uint32(got[b.Offset+int64(4*i):])))
			}
		} else {
			for i, n := range x.I32(o.Buffer) {
				cv = append(cv, float32(n))
				gv = append(gv, float32(int32(binary.LittleEndian.Uint32(got[b.Offset+int64(4*i):]))))
			}
		}
		e := kerneltest.RelErr(gv, cv)
		if e > worst {
			worst = e
		}
		if e > c.Tol {
			t.Errorf("%s: output %s rel err %.3g > %.1g", c.Name, o.Name, e, c.Tol)
		}
	}
	x.Close()
	t.Logf("worst relative error %.3g", worst)
}

func strconvHex(v float64) string { return fmt.Sprintf("%x", v) }
