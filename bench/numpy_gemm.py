"""fp32 GEMM GFLOP/s of numpy (OpenBLAS) for square n, the peer of gemmbench.

    OPENBLAS_NUM_THREADS=2 python3 bench/numpy_gemm.py --sizes 256,512 --reps 20

Prints one JSON object: the kernel OpenBLAS picked and, per size, the median
and best GFLOP/s over --reps timed products after one warm-up, the same
measurement as backends/cpu/gemm/cmd/gemmbench.
"""

import argparse
import json
import time

import numpy as np

import blasinfo


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512,1024,2048")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        a = (2 * rng.random((n, n), dtype=np.float32) - 1)
        b = (2 * rng.random((n, n), dtype=np.float32) - 1)
        c = np.empty((n, n), dtype=np.float32)
        np.matmul(a, b, out=c)
        ts = []
        for _ in range(args.reps):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            ts.append(time.perf_counter() - t)
        ts.sort()
        flops = 2.0 * n * n * n
        rows.append({"n": n, "median_ms": ts[len(ts) // 2] * 1e3,
                     "median_gflops": flops / ts[len(ts) // 2] / 1e9,
                     "best_gflops": flops / ts[0] / 1e9})
    print(json.dumps({"blas": blasinfo.describe(), "numpy": np.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
