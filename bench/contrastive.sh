#!/usr/bin/env bash
# bench/contrastive.sh: the fused contrastive loss (forward + backward)
# against PyTorch, in one run on this machine, at d = 128 and
# N = 1024, 4096, 8192 (an N×N similarity matrix), 2 threads each.
#
#   bench/contrastive.sh                 both objectives
#   bench/contrastive.sh nt_xent         SimCLR's NT-Xent only (or: dual)
#
# PyTorch runs with OMP_WAIT_POLICY=passive and with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset in its own command (its best configuration here,
# see shared notes/peers.md). Output: one JSON line per measurement in
# bench/out/contrastive.jsonl and a table of medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
objectives=${*:-nt_xent dual}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p bench/out
out=bench/out/contrastive.jsonl
: >"$out"
if ! "$PY" -c 'import torch' 2>/dev/null; then
  ./scripts/install-deps.sh python3-torch python3-numpy libopenblas0-pthread
fi
go build -o bench/out/contrastive-bench ./bench/contrastive
export OMP_WAIT_POLICY=passive
# PyTorch and expc alternate size by size, so that both see the same
# machine (this one is shared: load drifts over minutes).
for obj in $objectives; do
  for n in 1024 4096 8192; do
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 \
      "$PY" bench/contrastive_torch.py --objective "$obj" --n "$n" --d 128 --threads 2 | tee -a "$out"
    GOMAXPROCS=2 bench/out/contrastive-bench -objective "$obj" -n "$n" -d 128 -threads 2 | tee -a "$out"
  done
done
"$PY" - "$out" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (r["objective"], r["n"])
torch = {key(r): r for r in rows if r["system"] == "pytorch"}
print()
print("| objective | N | PyTorch ms | expc fused ms | speedup | PyTorch extra MiB | expc fused extra MiB | fused/PyTorch memory | arena fused | arena unfused |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if r["system"] != "expc-fused" or key(r) not in torch:
        continue
    t = torch[key(r)]
    print(f"| {r['objective']} | {r['n']} | {t['median_ms']:.1f} | {r['median_ms']:.1f} | {t['median_ms']/r['median_ms']:.2f}x "
          f"| {t['extra_peak_mib']:.1f} | {r['extra_peak_mib']:.1f} | {100*r['extra_peak_mib']/max(t['extra_peak_mib'],1e-9):.1f}% "
          f"| {r['arena_bytes']/2**20:.1f} MiB | {r['unfused_arena_bytes']/2**20:.1f} MiB |")
for r in rows:
    if r["system"] == "expc-unfused":
        print(f"expc unfused {r['objective']} N={r['n']}: {r['median_ms']:.1f} ms, extra {r['extra_peak_mib']:.1f} MiB")
PYEOF
