#!/usr/bin/env bash
# Installs Debian packages expc needs: always
#   dataset-fashion-mnist  the real data (IDX files under /usr/share/datasets)
# plus the packages named as arguments; `make test` adds
#   graphviz               `dot`, to check that `expc explain --format dot` renders
#   clang-14, clang-16     compile the generated CUDA to PTX for sm_80 and sm_90
#                          (no CUDA SDK needed; clang-14 stops at sm_86)
# Idempotent: packages already present are not reinstalled.
set -euo pipefail

need=()
for pkg in dataset-fashion-mnist "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
