#!/usr/bin/env bash
# bench/moe.sh: one mixture-of-experts layer, forward + backward, as expc's
# fused plan (fuse-moe-gating: a gating kernel, grouped expert GEMMs, a
# combine), expc's unfused plan (-O0: per-expert gathers and scatters over
# capacity-padded rows) and PyTorch written the straightforward way (a loop
# of index_select / index_add), in one run, 2 threads each. Default shape:
# 4096 tokens, d = 256, 8 experts of FFN 256-1024-256, top-2, dropless.
#
#   bench/moe.sh                 3 rounds, expc and PyTorch interleaved
#   ROUNDS=5 REPS=20 bench/moe.sh
#   bench/moe.sh --capacity 1.25 (extra flags go to both sides where they apply)
#
# PyTorch runs with OMP_WAIT_POLICY=passive and OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset in its own command only (its best configuration
# here, see shared notes/peers.md). Output: one JSON line per measurement in
# bench/out/moe.jsonl, then medians over the rounds and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-10}
SHAPE=(-tokens 4096 -d 256 -experts 8 -hidden 1024 -k 2)
PYSHAPE=(--tokens 4096 --d 256 --experts 8 --hidden 1024 --k 2)
CAP=()
if [ "${1:-}" = "--capacity" ]; then CAP=(-capacity "$2"); fi
mkdir -p bench/out
out=bench/out/moe.jsonl
: >"$out"
if ! "$PY" -c 'import torch' 2>/dev/null; then
  ./scripts/install-deps.sh python3-torch python3-numpy libopenblas0-pthread
fi
go build -o bench/out/moe-bench ./bench/moe
for r in $(seq "$ROUNDS"); do
  echo "bench/moe.sh: round $r of $ROUNDS" >&2
  GOMAXPROCS=2 bench/out/moe-bench "${SHAPE[@]}" "${CAP[@]}" -threads 2 -reps "$REPS" | tee -a "$out"
  if [ ${#CAP[@]} -eq 0 ]; then
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \
      "$PY" bench/moe_torch.py "${PYSHAPE[@]}" --threads 2 --reps "$REPS" | tee -a "$out"
  fi
done
"$PY" - "$out" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["system"], []).append(r["median_ms"])
med = {s: statistics.median(v) for s, v in by.items()}
print()
print("| system | median ms (per round) | median of rounds | expert FFN GFLOP/s |")
print("|---|---|---:|---:|")
r0 = rows[0]
work = 6 * 2 * r0["tokens"] * r0["k"] * r0["d"] * r0["hidden"]
for s, v in by.items():
    print(f"| {s} | {', '.join(f'{x:.1f}' for x in v)} | {med[s]:.1f} | {work / med[s] / 1e6:.0f} |")
f = med.get("expc-fused")
if f:
    if "expc-unfused" in med:
        print(f"\nfused vs expc unfused: {med['expc-unfused'] / f:.2f}x faster")
    if "pytorch" in med:
        print(f"fused vs PyTorch:      {med['pytorch'] / f:.2f}x faster")
    # The same ratios round by round (each round runs both back to back).
    n = min(len(by.get("pytorch", [])), len(by["expc-fused"]))
    if n:
        print("per round, PyTorch / fused: " + ", ".join(f"{by['pytorch'][i] / by['expc-fused'][i]:.2f}" for i in range(n)))
PYEOF
