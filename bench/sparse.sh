#!/usr/bin/env bash
# bench/sparse.sh: a masked linear layer, x 1024x1024 @ (W ⊙ M) with W
# 1024x1024, forward + backward (y, dX, dW), in one run, 2 threads each:
#
#   expc dense            the three dense GEMMs, no mask (expc's dense kernel)
#   expc dense-mask/<m>   the plan without fuse-sparse-masks: W ⊙ M, GEMMs, dW ⊙ M
#   expc fused/<m>/<k>    the masked kernels fuse-sparse-masks chooses:
#                         2:4 -> nm (compressed N:4), block -> block, unstructured -> csr
#   pytorch dense, dense-mask/<m>   y = x @ (W * M) and its backward
#
# for the masks 2:4 (by magnitude), block (10% of 32x32 blocks kept) and
# unstructured (10% kept). Rounds interleave expc and PyTorch; the table
# gives the median over rounds of each side's median per round, and the
# speedups the issue asks for (fused vs expc dense, fused vs PyTorch's
# dense-with-mask path).
#
#   bench/sparse.sh                  3 rounds of 20 repetitions
#   ROUNDS=5 REPS=30 bench/sparse.sh
#
# PyTorch runs with OMP_WAIT_POLICY=passive and OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset in its own command only (its best configuration on
# this machine, see shared notes/peers.md). Raw lines go to
# bench/out/sparse.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-20}
mkdir -p bench/out
out=bench/out/sparse.jsonl
: >"$out"
if ! "$PY" -c 'import torch' 2>/dev/null; then
  ./scripts/install-deps.sh python3-torch python3-numpy libopenblas0-pthread
fi
go build -o bench/out/sparse-bench ./bench/sparse
for r in $(seq "$ROUNDS"); do
  echo "bench/sparse.sh: round $r of $ROUNDS" >&2
  GOMAXPROCS=2 bench/out/sparse-bench -threads 2 -reps "$REPS" | tee -a "$out" >&2
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \
    "$PY" bench/sparse_torch.py --threads 2 --reps "$REPS" | tee -a "$out" >&2
done
"$PY" - "$out" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["system"], r["variant"]), []).append(r["median_ms"])
med = {k: statistics.median(v) for k, v in by.items()}
r0 = rows[0]
print(f"\nmasked linear layer, x {r0['batch']}x{r0['in']}, W {r0['in']}x{r0['out']}, forward + backward, "
      f"{r0['threads']} threads, {len(by[('expc', 'dense')])} rounds of {r0['reps']} (median of round medians)\n")
print("| system | variant | ms per round | median ms |")
print("|---|---|---|---:|")
for (s, v), ms in by.items():
    print(f"| {s} | {v} | {', '.join(f'{x:.2f}' for x in ms)} | {med[(s, v)]:.2f} |")
dense = med[("expc", "dense")]
print("\n| mask | fused kernel | fused ms | vs expc dense | vs expc dense-with-mask | vs PyTorch dense-with-mask | target vs expc dense |")
print("|---|---|---:|---:|---:|---:|---:|")
targets = {"2:4": 1.6, "block": 4.0, "unstructured": 1.5}
for (s, v), ms in med.items():
    if s != "expc" or not v.startswith("fused/") or v.count("/") != 2:
        continue
    _, m, k = v.split("/")
    pt = med.get(("pytorch", "dense-mask/" + m))
    em = med.get(("expc", "dense-mask/" + m))
    ok = "met" if dense / ms >= targets[m] and (pt is None or pt > ms) else "NOT met"
    print(f"| {m} | {k} | {ms:.2f} | {dense / ms:.2f}x | {em / ms:.2f}x | {pt / ms:.2f}x | {targets[m]}x: {ok} |")
PYEOF
