#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine: every kernel case against the
# CPU backend on fresh random inputs (‖gpu − cpu‖/‖cpu‖ within each case's
# tolerance), then 100 training steps of the MLP, contrastive and MoE specs
# (those that exist) on both backends; one table on stdout, exit 1 if any
# check fails.
#
# The GPU machine has no network and perhaps no Go: build the test binary
# here first (static Go, CGO_ENABLED=0; the driver and NVRTC load at run time)
# and carry it with the working tree:
#
#   scripts/gpu-check.sh --build      # -> bin/cuda-gpucheck.test (needs Go, no GPU)
#   scripts/gpu-check.sh              # on the GPU machine (builds first if Go is there and no binary is)
#
# EXPC_GPU_CHECK_SEED=N reruns with the inputs of an earlier run; EXPC_NVRTC
# names libnvrtc when it is not on the loader's path.
#
#   scripts/gpu-check.sh --fake       # here, without a GPU: the same check through the
#                                     # fake driver and NVRTC (backends/cuda/fakecuda), which
#                                     # run every kernel on the host SIMT emulator (needs Go
#                                     # and clang-14; times meaningless). On 2 cores the kernel
#                                     # table takes ~10 min; training defaults to 2 steps there:
#                                     # the MLP runs ~50 samples/s emulated, and a contrastive
#                                     # spec (batch 512, 1024 wide) takes minutes per step
#
# EXPC_GPU_CHECK_STEPS=N sets the training steps (default 100, 2 with --fake);
# EXPC_GPU_CHECK_SPECS=all trains every contrastive, MoE and sparse spec, not
# only the first of each, and a list (EXPC_GPU_CHECK_SPECS=sparse/gradual.cue,moe/mlp.cue)
# trains those; EXPC_GPU_CHECK_KERNELS=0 skips the kernel table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/cuda-gpucheck.test

if [ "${1:-}" = "--fake" ]; then
  fake=$(mktemp -d)
  trap 'rm -rf "$fake"' EXIT
  trap 'exit 130' INT TERM
  while IFS= read -r kv; do export "$kv"; done < <(go run ./backends/cuda/fakecuda/cmd/fakecuda "$fake")
  echo "fake CUDA: EXPC_LIBCUDA=$EXPC_LIBCUDA EXPC_NVRTC=$EXPC_NVRTC" >&2
  cd backends/cuda
  EXPC_GPU_CHECK=1 EXPC_GPU_CHECK_STEPS=${EXPC_GPU_CHECK_STEPS:-2} go test -count=1 -run '^TestGPUCheck$' -v -timeout 120m .
  exit
fi

build() {
  mkdir -p bin
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -vet=off -c -o "$bin" ./backends/cuda
  echo "built $bin ($(du -h "$bin" | cut -f1))" >&2
}

if [ "${1:-}" = "--build" ]; then
  build
  exit 0
fi
if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "no $bin and no Go to build it: run scripts/gpu-check.sh --build on a machine with Go" >&2; exit 2; }
  build
fi
if [ -z "${EXPC_NVRTC:-}" ] && ! ldconfig -p 2>/dev/null | grep -q libnvrtc; then
  # NVRTC is often installed with the toolkit (or PyTorch) but off the loader path.
  for f in /usr/local/cuda/lib64/libnvrtc.so* /usr/local/lib/python3*/dist-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so* \
           /usr/lib/python3*/dist-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*; do
    if [ -e "$f" ]; then export EXPC_NVRTC="$f"; break; fi
  done
fi
command -v nvidia-smi >/dev/null && nvidia-smi -L || true
abs=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
# The test binary runs in its package directory, as `go test` would.
cd backends/cuda
EXPC_GPU_CHECK=1 "$abs" -test.run '^TestGPUCheck$' -test.v -test.timeout 9m
