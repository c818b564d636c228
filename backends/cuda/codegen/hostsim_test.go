package codegen_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu"
	. "github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/hostsim"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
)

// TestKernelsOnHost runs the generated CUDA of every kernel case on the
// host SIMT emulator (backends/cuda/hostsim) against the CPU backend on
// fresh random inputs: each case's unit is compiled for the host with
// clang, its launches run in order, and every output must be within the
// case's tolerance of the CPU's. Races the emulator's scheduling happens to
// miss are not caught, and float results may differ from a GPU's in
// contraction (a GPU may fuse a·b+c), which the tolerances cover.
func TestKernelsOnHost(t *testing.T) {
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	dir := t.TempDir()
	rt := hostRuntime(t, clang, dir)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("EXPC_HOSTSIM_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("input seed %d (EXPC_HOSTSIM_SEED=%d reruns it)", seed, seed)
	for ci, c := range kerneltest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			checkOnHost(t, clang, rt, cpu.New(1), dir, seed+uint64(ci), ci, c)
		})
	}
}

// hostRuntime compiles the emulator into dir and returns the object.
func hostRuntime(t *testing.T, clang, dir string) string {
	t.Helper()
	rt, err := hostsim.BuildRuntime(clang, dir)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// checkOnHost builds case c's unit for the host, runs it on the emulator and
// compares it with backend cb.
func checkOnHost(t *testing.T, clang, runtime string, cb backends.Backend, dir string, seed uint64, ci int, c kerneltest.Case) {
	worst, bad := runOnHost(t, clang, runtime, cb, dir, seed, ci, c, nil)
	for _, msg := range bad {
		t.Error(msg)
	}
	t.Logf("worst relative error %.3g", worst)
}

// runOnHost runs case c's unit (its source passed through mutate, if set)
// on the emulator and returns the worst relative error against cb and a
// message per output out of tolerance.
func runOnHost(t *testing.T, clang, runtime string, cb backends.Backend, dir string, seed uint64, ci int, c kerneltest.Case, mutate func(string) string) (worst float64, bad []string) {
	plan, err := c.Plan("cuda")
	if err != nil {
		t.Fatal(err)
	}
	u, err := Generate(plan)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	src, err := hostsim.HostSource(u.Source)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if mutate != nil {
		src = mutate(src)
	}
	var sb strings.Builder
	sb.WriteString(src)
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
			case ArgU64:
				as = append(as, fmt.Sprintf("%#xULL", uint64(a.Int)))
			case ArgF64:
				as = append(as, strconvHex(a.F64))
			default:
				t.Fatalf("%s: launch %s: argument kind %d unknown to the emulator", c.Name, l.Entry, a.Kind)
			}
		}
		if l.Grid[2] != 1 || l.Block[1] != 1 || l.Block[2] != 1 {
			t.Fatalf("%s: launch %s has grid %v block %v; the emulator runs 2-D grids of 1-D blocks", c.Name, l.Entry, l.Grid, l.Block)
		}
		fmt.Fprintf(&sb, "  { auto f = [&]() { %s(%s); };\n    ex_h_launch(%d, %d, %d, [](void* p) { (*(decltype(f)*)p)(); }, &f); }\n",
			l.Entry, strings.Join(as, ", "), l.Grid[0], l.Grid[1], l.Block[0])
	}
	sb.WriteString("  if (*(i32*)scratch != 0) { fprintf(stderr, \"kernel status %d\\n\", *(i32*)scratch); return 4; }\n")
	fmt.Fprintf(&sb, "  fwrite(arena, 1, %d, stdout);\n  return 0;\n}\n", arena)
	in := filepath.Join(dir, fmt.Sprintf("c%d.cc", ci))
	bin := filepath.Join(dir, fmt.Sprintf("c%d", ci))
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(clang, "-x", "c++", "-std=c++17", "-O1", "-ffp-contract=off", "-w", in, "-x", "none", runtime, "-o", bin, "-lm").CombinedOutput(); err != nil {
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
	c.FillInputs(seed, f32, i32, plan)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = bytes.NewReader(mem)
	got, err := cmd.Output()
	if err != nil || len(got) != int(arena) {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: run: %v (%d bytes)\n%s", c.Name, err, len(got), stderr)
	}
	// CPU reference.
	cplan, _ := c.Plan("cpu")
	x, err := cb.Prepare(cplan)
	if err != nil {
		t.Fatal(err)
	}
	c.FillInputs(seed, x.F32, x.I32, cplan)
	if err := x.Run("train"); err != nil {
		t.Fatal(err)
	}
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
			bad = append(bad, fmt.Sprintf("%s: output %s rel err %.3g > %.1g", c.Name, o.Name, e, c.Tol))
		}
	}
	x.Close()
	return worst, bad
}

// TestEmulatorCatchesMissingSync: the emulator is only worth its passes if
// it fails kernels that are wrong on a GPU. Removing either barrier of the
// tiled GEMM (after staging a slab, or after using it) must put the result
// out of tolerance.
func TestEmulatorCatchesMissingSync(t *testing.T) {
	mutantsFail(t, "matmul ta=false tb=false", "the GEMM template", map[string][2]string{
		"barrier after staging": {"    ex_stage_b<TB, BN, BK, NT>(Bs, B, n0, k0, N, K, ldb, tid);\n    ex_sync();\n",
			"    ex_stage_b<TB, BN, BK, NT>(Bs, B, n0, k0, N, K, ldb, tid);\n"},
		"barrier after use": {"    ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);\n    ex_sync();\n  }\n  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, (float*)0,",
			"    ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);\n  }\n  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, (float*)0,"},
	})
}

// mutantsFail checks that the emulator fails kernel case caseName for each
// mutant of the unit's source (a text replaced once: {from, to}); what
// names the template the mutants edit, for the message when one no longer
// applies. The inputs are fixed (seed 11).
func mutantsFail(t *testing.T, caseName, what string, mutants map[string][2]string) {
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	dir := t.TempDir()
	rt := hostRuntime(t, clang, dir)
	var c kerneltest.Case
	for _, k := range kerneltest.Cases() {
		if k.Name == caseName {
			c = k
		}
	}
	if c.Op == "" {
		t.Fatalf("case %q is gone: pick another", caseName)
	}
	for name, m := range mutants {
		t.Run(name, func(t *testing.T) {
			mutated := false
			worst, bad := runOnHost(t, clang, rt, cpu.New(1), dir, 11, 0, c, func(src string) string {
				mutated = strings.Count(src, m[0]) == 1
				return strings.Replace(src, m[0], m[1], 1)
			})
			if !mutated {
				t.Fatalf("%s changed: update the mutant %q", what, name)
			}
			if len(bad) == 0 {
				t.Errorf("with the mutant %q, %s still matched the CPU (worst relative error %.3g)", name, what, worst)
			}
		})
	}
}

func strconvHex(v float64) string { return fmt.Sprintf("%x", v) }
