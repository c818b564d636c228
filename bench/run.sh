#!/usr/bin/env bash
# bench/run.sh: expc's CPU backend against its peers, same machine, same run.
#
#   bench/run.sh                    everything (4-7 minutes on this 2-core machine under load)
#   bench/run.sh --no-accuracy      skip the 3-epoch accuracy runs (3 seeds each, expc and PyTorch)
#   bench/run.sh --sections gemm,mlp,compile   any subset, in that order
#   bench/run.sh --reps 20          GEMM repetitions per size (default 20)
#   bench/run.sh --rate-runs 3      MLP rate rounds, expc and PyTorch interleaved (default 3)
#
# Installs the peers if missing (Debian python3-torch python3-numpy
# libopenblas0-pthread, and gorgonia through the Go module proxy), builds
# expc, gemmbench and bench/gorgonia-mlp, runs every measurement and prints
# one table of medians and ratios. The table is also written to
# bench/out/bench.md and bench/out/bench.json; raw outputs go to
# bench/out/cpu-bench/raw/. See bench/README.md for what each row means.
#
# OpenBLAS: this machine sets OPENBLAS_CORETYPE=Haswell and OPENBLAS_L2_SIZE
# for tests; the peers here run with both unset (in their own commands only)
# so OpenBLAS picks its AVX-512 kernels, their best on this machine.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out # bench.md, bench.json
SCR=$OUT/cpu-bench  # this script's scratch space; other bench scripts share bench/out
RAW=$SCR/raw
BIN=$SCR/bin
WORK=$SCR/work # cwd of every expc command: its .expc/ state stays here
PY=${PYTHON:-/usr/bin/python3} # Debian's python, where python3-torch lives
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in bench/
GO=${GO:-go}
THREADS=2

sections=gemm,mlp,compile
accuracy=1
reps=20
rate_runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --no-accuracy) accuracy=0 ;;
    --accuracy) accuracy=1 ;;
    --sections) sections=$2; shift ;;
    --reps) reps=$2; shift ;;
    --rate-runs) rate_runs=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
has() { [[ ",$sections," == *",$1,"* ]]; }
log() { echo "bench: $*" >&2; }

# The peers' environment: AVX-512 OpenBLAS with 2 threads, passive OpenMP
# waiting (PyTorch 1.13 otherwise spins its OpenMP threads against
# OpenBLAS's own), in this command only.
peer() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive "$@"; }

rm -rf "$RAW" "$WORK" "$SCR/runs" "$SCR/specs" "$SCR/plans"
mkdir -p "$RAW" "$BIN" "$WORK" "$SCR/specs" "$SCR/runs" "$SCR/plans"
T0=$(date +%s)

# --- peers -------------------------------------------------------------------
log "checking peers (apt: python3-torch python3-numpy libopenblas0-pthread; go: gorgonia)"
need=()
for pkg in python3-torch python3-numpy libopenblas0-pthread dataset-fashion-mnist; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  log "installing ${need[*]}"
  { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } ||
    { log "installing Debian packages failed"; exit 1; }
fi
$GO mod download gorgonia.org/gorgonia go4.org/unsafe/assume-no-moving-gc || { log "go mod download gorgonia failed"; exit 1; }

# --- builds ------------------------------------------------------------------
# A package someone is editing may not build for a minute: retry a few times,
# then carry on without that row.
build() { # build OUTPUT PACKAGE
  for try in 1 2 3; do
    $GO build -o "$BIN/$1" "$2" 2>"$RAW/build-$1.err" && return 0
    log "go build $2 failed (try $try), retrying in 20 s"; sleep 20
  done
  log "go build $2 failed: $(head -3 "$RAW/build-$1.err")"; return 1
}
log "building expc, gemmbench, gorgonia-mlp"
build expc ./cmd/expc
has gemm && build gemmbench ./backends/cpu/gemm/cmd/gemmbench
has mlp && build gorgonia-mlp ./bench/gorgonia-mlp
EXPC=$BIN/expc

$PY bench/report.py machine "$RAW" # prints the machine header, writes raw/machine.json

# --- 1. GEMM -----------------------------------------------------------------
# expc and OpenBLAS alternate size by size, so a burst of load from other
# users of the machine lands on both rather than on one.
if has gemm; then
  for n in 256 512 1024 2048; do
    log "GEMM n=$n: expc gemmbench, numpy/OpenBLAS ($reps reps each)"
    [ -x "$BIN/gemmbench" ] && "$BIN/gemmbench" -threads $THREADS -reps "$reps" -sizes $n >"$RAW/gemm_expc_$n.txt" 2>>"$RAW/gemm_expc.err"
    (cd bench && peer "$PY" numpy_gemm.py --reps "$reps" --sizes $n) >"$RAW/gemm_numpy_$n.json" 2>>"$RAW/gemm_numpy.err"
  done
fi

# --- 2. MLP ------------------------------------------------------------------
# Rates: rounds of (expc one epoch, PyTorch one warm-up + one timed epoch),
# interleaved for the same reason; the median round of each is reported.
if has mlp; then
  plan=$SCR/plans/mlp256.plan.json
  (cd "$WORK" && "$EXPC" build -o "$plan" "$ROOT/bench/specs/mlp256.cue") >/dev/null 2>"$RAW/mlp_expc_build.err"
  steps=$(( 60000 / 256 )) # one epoch
  for i in $(seq "$rate_runs"); do
    log "MLP rate round $i/$rate_runs: expc run --steps $steps"
    dir=$(cd "$WORK" && "$EXPC" run --threads $THREADS --steps $steps --runs-dir "$SCR/runs" "$plan" 2>>"$RAW/mlp_expc.err" | tail -1)
    [ -f "$dir/summary.json" ] && cp "$dir/summary.json" "$RAW/mlp_expc_rate_$i.json"
    log "MLP rate round $i/$rate_runs: PyTorch (1 warm-up epoch, 1 timed epoch)"
    (cd bench && peer "$PY" torch_mlp.py --threads $THREADS --warmup-epochs 1 --rate-epochs 1 --accuracy-epochs 0) \
      >"$RAW/mlp_torch_rate_$i.json" 2>>"$RAW/mlp_torch.err"
  done

  log "MLP: gorgonia (20 warm-up + 200 timed steps)"
  [ -x "$BIN/gorgonia-mlp" ] && "$BIN/gorgonia-mlp" -threads $THREADS -warmup 20 -rate-steps 200 -chunk 50 -accuracy-epochs 0 \
    >"$RAW/mlp_gorgonia.json" 2>"$RAW/mlp_gorgonia.err"

  # Accuracy after 3 epochs varies by about a point from seed to seed, so
  # expc and PyTorch each train from the same three seeds and the means are
  # compared.
  if [ $accuracy = 1 ]; then
    for seed in 1 2 3; do
      log "MLP accuracy: expc run (3 epochs, seed $seed)"
      sed "s/seed: 1}/seed: $seed}/" bench/specs/mlp256.cue >"$SCR/specs/mlp256-seed$seed.cue"
      p=$SCR/plans/mlp256-seed$seed.plan.json
      dir=$(cd "$WORK" && "$EXPC" build -o "$p" "$SCR/specs/mlp256-seed$seed.cue" >/dev/null 2>>"$RAW/mlp_expc.err" &&
        "$EXPC" run --threads $THREADS --runs-dir "$SCR/runs" "$p" 2>>"$RAW/mlp_expc.err" | tail -1)
      [ -f "$dir/summary.json" ] && cp "$dir/summary.json" "$RAW/mlp_expc_acc_$seed.json"
    done
    log "MLP accuracy: PyTorch (3 epochs, seeds 1,2,3)"
    (cd bench && peer "$PY" torch_mlp.py --threads $THREADS --rate-epochs 0 --accuracy-epochs 3 --accuracy-seeds 1,2,3) \
      >"$RAW/mlp_torch_acc.json" 2>>"$RAW/mlp_torch.err"
  fi
fi

# --- 3. compile time ---------------------------------------------------------
if has compile; then
  # The deep MLPs of pipeline/bench_test.go (BenchmarkBuildDeepMLP):
  # n hidden layers of width 64 on blobs.
  for n in 50 100 200 400; do
    w=$(printf '64, %.0s' $(seq "$n")); w=${w%, }
    printf 'name: "deep-%d"\ndataset: {name: "blobs", batch: 64, dim: 32}\nmodel: {kind: "mlp", hidden: [%s]}\n' "$n" "$w" >"$SCR/specs/deep-$n.cue"
  done
  : >"$RAW/compile.tsv"
  for spec in "$ROOT/bench/specs/mlp256.cue" "$SCR"/specs/deep-{50,100,200,400}.cue; do
    name=$(basename "$spec" .cue)
    log "compile: expc build $name (5 runs)"
    for i in 1 2 3 4 5; do
      t=$(date +%s%N)
      (cd "$WORK" && "$EXPC" build -o "$SCR/plans/build-$name.json" "$spec") >/dev/null 2>"$RAW/compile.err" || { log "expc build $name failed"; break; }
      wall_us=$(( ($(date +%s%N) - t) / 1000 ))
      # total_seconds of the build's timings file: the compile inside the
      # process, without process start-up.
      inproc=$(sed -n 's/.*"total_seconds": *\([0-9.e+-]*\).*/\1/p' "$SCR/plans/build-$name.json.timings.json")
      echo -e "$name\t$wall_us\t${inproc:-}" >>"$RAW/compile.tsv"
    done
  done
fi

echo "total_seconds=$(( $(date +%s) - T0 ))" >"$RAW/elapsed.txt"
$PY bench/report.py table "$RAW" "$OUT"
