//go:build linux

package fakecuda

// libcudaSource is the fake driver. Device memory is host memory; a module
// is a shared library that the fake NVRTC built (its "image" is the text
// expcLibraryPrefix + path); a launch runs the entry's trampoline on every
// emulated thread through the hostsim runtime linked into this library.
//
// It checks what a real driver checks and what the backend relies on:
// calls before cuInit fail with CUDA_ERROR_NOT_INITIALIZED, calls without
// the context current on the calling thread (the backend makes every call
// from one locked OS thread) with CUDA_ERROR_INVALID_CONTEXT, copies and
// memsets must stay inside one allocation, and launches the emulator cannot
// run (3-D blocks, a z grid, dynamic shared memory) fail with
// CUDA_ERROR_NOT_SUPPORTED instead of running wrongly.
const libcudaSource = `#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <map>
#include <mutex>
#include <string>
#include <vector>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned int u32;

enum {
  SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, NO_DEVICE = 100, INVALID_DEVICE = 101,
  INVALID_IMAGE = 200, INVALID_CONTEXT = 201, INVALID_HANDLE = 400, NOT_FOUND = 500, NOT_SUPPORTED = 801,
};

extern "C" void ex_h_launch(u32 gx, u32 gy, u32 bx, void (*fn)(void*), void* ctx);

namespace {
struct Ctx { int dev; };
struct Function { void (*tramp)(void**); };
struct Module { void* lib; std::vector<Function*> fns; }; // fns are freed with the module
struct Launch { void (*tramp)(void**); void** params; };

bool initialised;
Ctx primary = {0};
int retained;
thread_local Ctx* current;
std::mutex mu; // guards allocs
std::map<CUdeviceptr, size_t> allocs; // base -> bytes

const char* prefix = "` + expcLibraryPrefix + `";

CUresult needCtx() {
  if (!initialised) return NOT_INITIALIZED;
  if (current != &primary) return INVALID_CONTEXT;
  return SUCCESS;
}

// inside reports whether [p, p+n) lies in one allocation.
bool inside(CUdeviceptr p, size_t n) {
  std::lock_guard<std::mutex> g(mu);
  auto it = allocs.upper_bound(p);
  if (it == allocs.begin()) return false;
  --it;
  return p >= it->first && p - it->first <= it->second && n <= it->second - (p - it->first);
}

void launchThread(void* p) {
  Launch* l = (Launch*)p;
  l->tramp(l->params);
}

struct ErrName { int code; const char* name; const char* desc; };
const ErrName errNames[] = {
  {SUCCESS, "CUDA_SUCCESS", "no error"},
  {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
  {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
  {NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
  {NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
  {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
  {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid (fake driver: not a library from the fake NVRTC, or dlopen failed)"},
  {INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context (fake driver: no context current on this thread)"},
  {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
  {NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
  {NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported (fake driver: the host emulator runs 2-D grids of 1-D blocks without dynamic shared memory)"},
};
} // namespace

extern "C" {

CUresult cuInit(unsigned flags) {
  if (flags != 0) return INVALID_VALUE;
  initialised = true;
  return SUCCESS;
}

CUresult cuDriverGetVersion(int* v) {
  if (!v) return INVALID_VALUE;
  *v = 12000;
  return SUCCESS;
}

CUresult cuDeviceGetCount(int* n) {
  if (!initialised) return NOT_INITIALIZED;
  if (!n) return INVALID_VALUE;
  *n = 1;
  return SUCCESS;
}

CUresult cuDeviceGet(CUdevice* d, int ordinal) {
  if (!initialised) return NOT_INITIALIZED;
  if (!d) return INVALID_VALUE;
  if (ordinal != 0) return INVALID_DEVICE;
  *d = 0;
  return SUCCESS;
}

CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
  if (!initialised) return NOT_INITIALIZED;
  if (!v) return INVALID_VALUE;
  if (d != 0) return INVALID_DEVICE;
  switch (attr) {
  case 1: *v = 1024; return SUCCESS;   // MAX_THREADS_PER_BLOCK
  case 2: *v = 1024; return SUCCESS;   // MAX_BLOCK_DIM_X
  case 5: *v = 2147483647; return SUCCESS; // MAX_GRID_DIM_X
  case 8: *v = 48 << 10; return SUCCESS; // MAX_SHARED_MEMORY_PER_BLOCK
  case 10: *v = 32; return SUCCESS;    // WARP_SIZE
  case 16: *v = 1; return SUCCESS;     // MULTIPROCESSOR_COUNT
  case 75: *v = 8; return SUCCESS;     // COMPUTE_CAPABILITY_MAJOR
  case 76: *v = 0; return SUCCESS;     // COMPUTE_CAPABILITY_MINOR
  }
  return INVALID_VALUE; // not emulated: a new query should be noticed, not answered 0
}

CUresult cuDeviceGetName(char* name, int n, CUdevice d) {
  if (!initialised) return NOT_INITIALIZED;
  if (!name || n <= 0) return INVALID_VALUE;
  if (d != 0) return INVALID_DEVICE;
  snprintf(name, (size_t)n, "%s", "expc host emulator (fake CUDA driver)");
  return SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice d) {
  if (!initialised) return NOT_INITIALIZED;
  if (!ctx) return INVALID_VALUE;
  if (d != 0) return INVALID_DEVICE;
  retained++;
  *ctx = &primary;
  return SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
  if (!initialised) return NOT_INITIALIZED;
  if (d != 0) return INVALID_DEVICE;
  if (retained == 0) return INVALID_CONTEXT;
  retained--;
  return SUCCESS;
}

CUresult cuCtxSetCurrent(void* ctx) {
  if (!initialised) return NOT_INITIALIZED;
  if (ctx != 0 && ctx != &primary) return INVALID_CONTEXT;
  current = (Ctx*)ctx;
  return SUCCESS;
}

CUresult cuCtxSynchronize() { return needCtx(); } // launches run to completion

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
  if (CUresult r = needCtx()) return r;
  if (!p || n == 0) return INVALID_VALUE;
  void* m = aligned_alloc(256, (n + 255) / 256 * 256);
  if (!m) return OUT_OF_MEMORY;
  memset(m, 0xAB, n); // device memory is not zeroed: the backend must memset what it reads
  std::lock_guard<std::mutex> g(mu);
  allocs[(CUdeviceptr)m] = n;
  *p = (CUdeviceptr)m;
  return SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
  if (CUresult r = needCtx()) return r;
  std::lock_guard<std::mutex> g(mu);
  auto it = allocs.find(p);
  if (it == allocs.end()) return INVALID_VALUE;
  allocs.erase(it);
  free((void*)p);
  return SUCCESS;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
  if (CUresult r = needCtx()) return r;
  if (!src || !inside(dst, n)) return INVALID_VALUE;
  memcpy((void*)dst, src, n);
  return SUCCESS;
}

CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
  if (CUresult r = needCtx()) return r;
  if (!dst || !inside(src, n)) return INVALID_VALUE;
  memcpy(dst, (const void*)src, n);
  return SUCCESS;
}

CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
  if (CUresult r = needCtx()) return r;
  if (!inside(dst, n)) return INVALID_VALUE;
  memset((void*)dst, v, n);
  return SUCCESS;
}

CUresult cuModuleLoadData(void** mod, const void* image) {
  if (CUresult r = needCtx()) return r;
  if (!mod || !image) return INVALID_VALUE;
  const char* s = (const char*)image;
  const size_t np = strlen(prefix);
  if (strncmp(s, prefix, np) != 0) return INVALID_IMAGE;
  void* lib = dlopen(s + np, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "fake CUDA driver: %s\n", dlerror());
    return INVALID_IMAGE;
  }
  *mod = new Module{lib, {}};
  return SUCCESS;
}

CUresult cuModuleUnload(void* mod) {
  if (CUresult r = needCtx()) return r;
  if (!mod) return INVALID_HANDLE;
  Module* m = (Module*)mod;
  dlclose(m->lib);
  for (Function* f : m->fns) delete f;
  delete m;
  return SUCCESS;
}

CUresult cuModuleGetFunction(void** fn, void* mod, const char* name) {
  if (CUresult r = needCtx()) return r;
  if (!fn || !name) return INVALID_VALUE;
  if (!mod) return INVALID_HANDLE;
  std::string sym = std::string("ex_tramp_") + name;
  void* t = dlsym(((Module*)mod)->lib, sym.c_str());
  if (!t) return NOT_FOUND;
  Function* f = new Function{(void (*)(void**))t};
  ((Module*)mod)->fns.push_back(f);
  *fn = f;
  return SUCCESS;
}

CUresult cuLaunchKernel(void* fn, u32 gx, u32 gy, u32 gz, u32 bx, u32 by, u32 bz, u32 shared, void* stream,
                        void** params, void** extra) {
  if (CUresult r = needCtx()) return r;
  if (!fn) return INVALID_HANDLE;
  if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || (uint64_t)bx * by * bz > 1024 || gy > 65535 || gz > 65535) return INVALID_VALUE;
  if (extra != 0) return NOT_SUPPORTED;
  if (gz != 1 || by != 1 || bz != 1 || shared != 0) return NOT_SUPPORTED;
  (void)stream;
  Launch l = {((Function*)fn)->tramp, params};
  ex_h_launch(gx, gy, bx, launchThread, &l);
  return SUCCESS;
}

CUresult cuGetErrorName(CUresult r, const char** s) {
  if (!s) return INVALID_VALUE;
  for (const ErrName& e : errNames)
    if (e.code == r) { *s = e.name; return SUCCESS; }
  *s = 0;
  return INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult r, const char** s) {
  if (!s) return INVALID_VALUE;
  for (const ErrName& e : errNames)
    if (e.code == r) { *s = e.desc; return SUCCESS; }
  *s = 0;
  return INVALID_VALUE;
}

} // extern "C"
`
