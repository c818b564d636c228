// Package hostsim runs generated CUDA units on the host, for checking
// kernels without a GPU (backends/cuda/codegen's tests, and the fake
// driver in backends/cuda/fakecuda).
//
// It is a host SIMT emulator for generated units, so that every kernel, tiled
// ones included, runs without a GPU. A launch runs its blocks one after
// another; each block's threads are fibers (ucontext) on one OS thread,
// running the kernel's own code unchanged, switched at every barrier:
//
//   - ex_sync is a barrier over the block's live threads (a thread that
//     returns leaves it, as exited threads do on the GPU);
//   - warp shuffles exchange values through a per-block slot array between
//     two warp barriers;
//   - __shared__ variables are function statics: one copy, shared by the
//     block's threads (blocks never overlap, so it is per block).
//
// Between barriers the threads run in an order shuffled afresh at every
// barrier, so a missing ex_sync (a thread reading shared memory another
// thread has not written yet, or overwriting what another has not read)
// changes the result and fails the comparison, and the runs are still
// reproducible. Threads waiting at different barriers (a divergent
// ex_sync) are a deadlock, which the emulator reports instead of hanging.
//
// The runtime (RuntimeSource) is compiled once (BuildRuntime); each unit
// is compiled with its device prelude replaced by Prelude() and linked
// with it.
package hostsim

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/expc-dev/expc/backends/cuda/codegen"
)

// Prelude replaces the device prelude in a unit compiled for the host: the
// primitives with host semantics (exactly rounded float64 arithmetic is the
// host's own; no FMA contraction: compile with -ffp-contract=off), then the
// device prelude's own portable helpers built on them (its tail).
func Prelude() string { return primitives + preludeTail() }

// HostSource turns a generated unit's source into host source: the device
// prelude replaced by Prelude(), and the one inline PTX outside the
// prelude (an uncontracted float32 product) by plain C++.
func HostSource(unit string) (string, error) {
	dev := codegen.PreludeSource()
	i := strings.Index(unit, dev)
	if i < 0 {
		return "", fmt.Errorf("hostsim: the unit does not start with the device prelude")
	}
	src := unit[i+len(dev):]
	const fmul = `{ float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }`
	src = strings.ReplaceAll(src, fmul, `{ return a * b; }`)
	if strings.Contains(src, "asm(") {
		return "", fmt.Errorf("hostsim: the unit has inline PTX the host cannot run")
	}
	return Prelude() + src, nil
}

// preludeTail is the part of the device prelude written only in terms of
// the primitives (warp reductions, ex_fail, ...), from its first such
// helper on.
func preludeTail() string {
	const first = "EX_DEV float ex_fabsf("
	p := codegen.PreludeSource()
	i := strings.Index(p, first)
	if i < 0 {
		panic("hostsim: the device prelude no longer defines ex_fabsf: update preludeTail")
	}
	return p[i:]
}

// BuildRuntime compiles the emulator with clang into dir and returns the
// object file (position-independent, so that it links into a shared
// library too).
func BuildRuntime(clang, dir string) (string, error) {
	obj := filepath.Join(dir, "hostsim_runtime.o")
	if err := os.WriteFile(obj+".cc", []byte(RuntimeSource), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command(clang, "-x", "c++", "-std=c++17", "-O1", "-fPIC", "-c", obj+".cc", "-o", obj).CombinedOutput(); err != nil {
		return "", fmt.Errorf("compiling the emulator: %v\n%s", err, out)
	}
	return obj, nil
}

const primitives = `typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;
#define EX_DEV static inline
#define EX_FULL_MASK 0xffffffffu
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)
extern "C" {
u32 ex_h_tid(); u32 ex_h_bid_x(); u32 ex_h_bid_y(); u32 ex_h_bdim(); u32 ex_h_gdim();
void ex_h_sync(); i32 ex_h_shfl(i32 v, i32 m);
}
EX_DEV u32 ex_tid_x() { return ex_h_tid(); }
EX_DEV u32 ex_bid_x() { return ex_h_bid_x(); }
EX_DEV u32 ex_bid_y() { return ex_h_bid_y(); }
EX_DEV u32 ex_bdim_x() { return ex_h_bdim(); }
EX_DEV u32 ex_gdim_x() { return ex_h_gdim(); }
EX_DEV void ex_sync() { ex_h_sync(); }
EX_DEV i32 ex_shfl_xor_i(i32 v, i32 m) { return ex_h_shfl(v, m); }
EX_DEV u32 ex_f2u(float x) { return __builtin_bit_cast(u32, x); }
EX_DEV float ex_u2f(u32 x) { return __builtin_bit_cast(float, x); }
EX_DEV u64 ex_d2u(double x) { return __builtin_bit_cast(u64, x); }
EX_DEV double ex_u2d(u64 x) { return __builtin_bit_cast(double, x); }
EX_DEV float ex_shfl_xor_f(float v, i32 m) { return ex_u2f((u32)ex_h_shfl((i32)ex_f2u(v), m)); }
EX_DEV i32 ex_atomic_cas_i(i32* p, i32 c, i32 v) { __atomic_compare_exchange_n(p, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return c; }
EX_DEV double ex_dadd(double a, double b) { return a + b; }
EX_DEV double ex_dsub(double a, double b) { return a - b; }
EX_DEV double ex_dmul(double a, double b) { return a * b; }
EX_DEV double ex_ddiv(double a, double b) { return a / b; }
EX_DEV double ex_dsqrt(double a) { return __builtin_sqrt(a); }
EX_DEV float ex_fsqrt(float a) { return __builtin_sqrtf(a); }
// Launch one kernel: ex_h_launch runs fn(ctx) on every thread of every block.
extern "C" void ex_h_launch(u32 gx, u32 gy, u32 bx, void (*fn)(void*), void* ctx);
struct P { char* p; template <class T> operator T*() const { return (T*)p; } };
`

// RuntimeSource is the emulator itself (C++).
const RuntimeSource = `#include <setjmp.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
typedef int i32;
typedef unsigned int u32;
typedef unsigned long long u64;

enum { RUNNABLE, AT_SYNC, AT_WARP, DONE };
// A fiber starts on its own stack through makecontext/setcontext; after
// that, switches are _setjmp/_longjmp, which (unlike swapcontext) make no
// system call.
struct Fiber { ucontext_t ctx; jmp_buf jb; int state; bool started; char* stack; };

static const size_t stackBytes = 256 << 10;
static jmp_buf scheduler;
static Fiber* fibers;
static u32* order;
static i32* slots;
static u32 nfibers, cur, bx, by, bdim, gdim;
static void (*kernel)(void*);
static void* kernelArgs;
static u64 rng = 0x9E3779B97F4A7C15ull;

static u64 next() { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void block(int state) {
  fibers[cur].state = state;
  if (!_setjmp(fibers[cur].jb)) _longjmp(scheduler, 1);
}

static void fiberMain() {
  kernel(kernelArgs);
  fibers[cur].state = DONE;
  _longjmp(scheduler, 1);
}

extern "C" {
u32 ex_h_tid() { return cur; }
u32 ex_h_bid_x() { return bx; }
u32 ex_h_bid_y() { return by; }
u32 ex_h_bdim() { return bdim; }
u32 ex_h_gdim() { return gdim; }
void ex_h_sync() { block(AT_SYNC); }
i32 ex_h_shfl(i32 v, i32 m) {
  const u32 me = cur, src = (me & ~31u) | ((me ^ (u32)m) & 31u);
  slots[me] = v;
  block(AT_WARP); // every lane has written
  const i32 r = src < bdim ? slots[src] : v;
  block(AT_WARP); // every lane has read
  return r;
}

// runBlock runs every thread of the current block to completion.
static void runBlock() {
  for (u32 t = 0; t < nfibers; t++) {
    Fiber* f = &fibers[t];
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = stackBytes;
    f->ctx.uc_link = 0;
    makecontext(&f->ctx, fiberMain, 0);
    f->state = RUNNABLE;
    f->started = false;
  }
  for (;;) {
    for (u32 i = nfibers; i > 1; i--) { // a fresh order for every phase
      const u32 j = (u32)(next() % i), o = order[i - 1];
      order[i - 1] = order[j]; order[j] = o;
    }
    for (u32 i = 0; i < nfibers; i++) {
      cur = order[i];
      Fiber* f = &fibers[cur];
      if (f->state != RUNNABLE || _setjmp(scheduler)) continue; // back from a switch
      if (!f->started) { f->started = true; setcontext(&f->ctx); }
      _longjmp(f->jb, 1);
    }
    // Everyone is blocked or done: release the barriers that are complete.
    u32 live = 0, atSync = 0;
    bool released = false;
    for (u32 w = 0; w * 32 < nfibers; w++) {
      u32 wl = 0, wa = 0;
      for (u32 t = w * 32; t < nfibers && t < w * 32 + 32; t++) {
        const int s = fibers[t].state;
        if (s != DONE) wl++;
        if (s == AT_WARP) wa++;
        if (s == AT_SYNC) atSync++;
      }
      live += wl;
      if (wa > 0 && wa == wl) {
        for (u32 t = w * 32; t < nfibers && t < w * 32 + 32; t++) fibers[t].state = RUNNABLE;
        released = true;
      }
    }
    if (live == 0) return;
    if (released) continue;
    if (atSync == live) {
      for (u32 t = 0; t < nfibers; t++)
        if (fibers[t].state == AT_SYNC) fibers[t].state = RUNNABLE;
      continue;
    }
    fprintf(stderr, "emulator: deadlock in block (%u, %u): threads wait at different barriers (%u of %u live at ex_sync)\n", bx, by, atSync, live);
    exit(3);
  }
}

void ex_h_launch(u32 gx, u32 gy, u32 threads, void (*fn)(void*), void* args) {
  if (threads > nfibers) {
    fibers = (Fiber*)realloc(fibers, threads * sizeof(Fiber));
    order = (u32*)realloc(order, threads * sizeof(u32));
    slots = (i32*)realloc(slots, threads * sizeof(i32));
    for (u32 t = nfibers; t < threads; t++) fibers[t].stack = (char*)malloc(stackBytes);
  }
  nfibers = threads;
  for (u32 t = 0; t < threads; t++) order[t] = t;
  bdim = threads; gdim = gx; kernel = fn; kernelArgs = args;
  for (u32 y = 0; y < gy; y++)
    for (u32 x = 0; x < gx; x++) { bx = x; by = y; runBlock(); }
}
}
`
