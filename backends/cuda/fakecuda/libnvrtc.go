//go:build linux

package fakecuda

// libnvrtcSource is the fake NVRTC. Compiling a program turns its CUDA into
// host source exactly as hostsim.HostSource does (the pieces come from
// fakecuda_config.h, which Build writes from the Go side), finds the
// kernels by preprocessing a copy in which __global__ expands to a marker
// (so kernels declared through macros are found too), appends one
// trampoline per kernel, ex_tramp_NAME(void** kernelParams), and builds a
// shared library with clang. The trampoline unpacks kernelParams by the
// kernel's own parameter types (deduced by the compiler from the function
// type, not parsed), as the driver does. The CUBIN and PTX handed back are
// the same short text naming the library.
const libnvrtcSource = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <atomic>
#include <regex>
#include <set>
#include <string>
#include <vector>
#include "fakecuda_config.h"

namespace {
enum { OK = 0, OUT_OF_MEMORY = 1, INVALID_INPUT = 3, INVALID_PROGRAM = 4, INVALID_OPTION = 5, COMPILATION = 6 };

struct Program { std::string src, name, log, image; };

std::atomic<int> serial;

const char* trampolines = R"EXPC(
template <class T, T... I> struct ex_fake_seq {};
template <unsigned long N, unsigned long... I> struct ex_fake_mkseq : ex_fake_mkseq<N - 1, N - 1, I...> {};
template <unsigned long... I> struct ex_fake_mkseq<0, I...> { typedef ex_fake_seq<unsigned long, I...> type; };
template <class... A, unsigned long... I> static inline void ex_fake_call(void (*f)(A...), void** a, ex_fake_seq<unsigned long, I...>) { f(*(A*)a[I]...); }
template <class... A> static inline void ex_fake_call(void (*f)(A...), void** a) { ex_fake_call(f, a, typename ex_fake_mkseq<sizeof...(A)>::type()); }
)EXPC";

bool writeFile(const std::string& path, const std::string& s) {
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = fwrite(s.data(), 1, s.size(), f) == s.size();
  return fclose(f) == 0 && ok;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

// run runs a shell command and returns its exit status and output.
int run(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  return pclose(p);
}

void replaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t i = 0; (i = s->find(from, i)) != std::string::npos; i += to.size()) s->replace(i, from.size(), to);
}

// hostSource is hostsim.HostSource.
bool hostSource(const std::string& unit, std::string* out, std::string* err) {
  const std::string dev = ex_device_prelude;
  size_t i = unit.find(dev);
  if (i == std::string::npos) {
    *err = "hostsim: the unit does not start with the device prelude";
    return false;
  }
  std::string src = unit.substr(i + dev.size());
  replaceAll(&src, ex_fmul_device, ex_fmul_host);
  if (src.find("asm(") != std::string::npos) {
    *err = "hostsim: the unit has inline PTX the host cannot run";
    return false;
  }
  *out = std::string(ex_host_prelude) + src;
  return true;
}

int compile(Program* p) {
  std::string host;
  if (!hostSource(p->src, &host, &p->log)) return COMPILATION;
  const std::string base = std::string(ex_workdir) + "/module_" + std::to_string(getpid()) + "_" + std::to_string(serial++);
  // The kernels: preprocess a copy where __global__ is a marker.
  std::string marked = host;
  const std::string def = "#define __global__\n";
  size_t d = marked.find(def);
  if (d == std::string::npos) {
    p->log = "fake NVRTC: the host prelude no longer defines __global__";
    return COMPILATION;
  }
  marked.replace(d, def.size(), "#define __global__ EX_FAKE_GLOBAL\n");
  if (!writeFile(base + ".marked.cc", marked) || !writeFile(base + ".cc", host)) {
    p->log = "fake NVRTC: cannot write " + base + ".cc";
    return COMPILATION;
  }
  std::string pre;
  if (run(quote(ex_clang) + " -x c++ -std=c++17 -E -P -w " + quote(base + ".marked.cc"), &pre) != 0) {
    p->log = pre;
    return COMPILATION;
  }
  unlink((base + ".marked.cc").c_str());
  std::set<std::string> seen;
  std::string tramps = trampolines;
  const std::regex entry("extern\\s*\"C\"\\s*EX_FAKE_GLOBAL\\s+void\\s+([A-Za-z_][A-Za-z_0-9]*)\\s*\\(");
  for (std::sregex_iterator it(pre.begin(), pre.end(), entry), end; it != end; ++it) {
    const std::string name = (*it)[1];
    if (!seen.insert(name).second) continue;
    tramps += "extern \"C\" void ex_tramp_" + name + "(void** a) { ex_fake_call(" + name + ", a); }\n";
  }
  if (!writeFile(base + ".cc", host + tramps)) {
    p->log = "fake NVRTC: cannot write " + base + ".cc";
    return COMPILATION;
  }
  std::string log;
  if (run(quote(ex_clang) + " -x c++ -std=c++17 -O1 -ffp-contract=off -fPIC -shared -w " + quote(base + ".cc") + " -o " + quote(base + ".so"), &log) != 0) {
    p->log = log;
    return COMPILATION;
  }
  p->log = log;
  p->image = std::string(ex_library_prefix) + base + ".so";
  p->image.push_back('\0');
  return OK;
}
} // namespace

extern "C" {

int nvrtcVersion(int* major, int* minor) {
  if (!major || !minor) return INVALID_INPUT;
  *major = 12;
  *minor = 0;
  return OK;
}

int nvrtcCreateProgram(void** prog, const char* src, const char* name, int nHeaders, const char* const* headers, const char* const* includes) {
  if (!prog || !src || nHeaders < 0) return INVALID_INPUT;
  if (nHeaders > 0) return INVALID_INPUT; // not emulated; the backend passes none
  (void)headers; (void)includes;
  *prog = new Program{src, name ? name : "default_program", "", ""};
  return OK;
}

int nvrtcCompileProgram(void* prog, int nOpts, const char* const* opts) {
  if (!prog) return INVALID_PROGRAM;
  for (int i = 0; i < nOpts; i++) {
    if (!opts || !opts[i]) return INVALID_OPTION;
    std::string o = opts[i];
    // The options the backend passes; anything else would be silently ignored, so refuse it.
    if (o.rfind("--gpu-architecture=", 0) != 0 && o != "--std=c++17") return INVALID_OPTION;
  }
  return compile((Program*)prog);
}

int nvrtcGetProgramLogSize(void* prog, size_t* n) {
  if (!prog) return INVALID_PROGRAM;
  if (!n) return INVALID_INPUT;
  *n = ((Program*)prog)->log.size() + 1;
  return OK;
}

int nvrtcGetProgramLog(void* prog, char* log) {
  if (!prog) return INVALID_PROGRAM;
  if (!log) return INVALID_INPUT;
  const std::string& s = ((Program*)prog)->log;
  memcpy(log, s.c_str(), s.size() + 1);
  return OK;
}

static int imageSize(void* prog, size_t* n) {
  if (!prog) return INVALID_PROGRAM;
  if (!n) return INVALID_INPUT;
  *n = ((Program*)prog)->image.size();
  return OK;
}

static int image(void* prog, char* out) {
  if (!prog) return INVALID_PROGRAM;
  if (!out) return INVALID_INPUT;
  const std::string& s = ((Program*)prog)->image;
  if (s.empty()) return INVALID_PROGRAM; // not compiled
  memcpy(out, s.data(), s.size());
  return OK;
}

int nvrtcGetCUBINSize(void* prog, size_t* n) { return imageSize(prog, n); }
int nvrtcGetCUBIN(void* prog, char* out) { return image(prog, out); }
int nvrtcGetPTXSize(void* prog, size_t* n) { return imageSize(prog, n); }
int nvrtcGetPTX(void* prog, char* out) { return image(prog, out); }

int nvrtcDestroyProgram(void** prog) {
  if (!prog || !*prog) return INVALID_PROGRAM;
  delete (Program*)*prog;
  *prog = 0;
  return OK;
}

const char* nvrtcGetErrorString(int r) {
  switch (r) {
  case OK: return "NVRTC_SUCCESS";
  case OUT_OF_MEMORY: return "NVRTC_ERROR_OUT_OF_MEMORY";
  case INVALID_INPUT: return "NVRTC_ERROR_INVALID_INPUT";
  case INVALID_PROGRAM: return "NVRTC_ERROR_INVALID_PROGRAM";
  case INVALID_OPTION: return "NVRTC_ERROR_INVALID_OPTION";
  case COMPILATION: return "NVRTC_ERROR_COMPILATION";
  }
  return "NVRTC_ERROR unknown";
}

} // extern "C"
`
