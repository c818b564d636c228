"""PyTorch peer of bench/sparse: a masked linear layer, forward + backward,
y = x @ (W * M), as PyTorch runs it (the mask multiply, then dense GEMMs;
the mask's zeros cost as much as any weight). Same shapes and masks as the
Go command: 2:4 by magnitude, 10% of 32x32 blocks, 10% unstructured, and
the dense layer without a mask.

    OMP_WAIT_POLICY=passive python3 bench/sparse_torch.py --threads 2

Prints one JSON line per variant: {"system": "pytorch", "variant": ..., "median_ms": ...}.
"""

import argparse
import json
import time

import torch


def masks(w, batch_in, out, gen):
    kin = w.shape[0]
    # 2:4 along the input features of each output column, by magnitude
    g = w.abs().reshape(kin // 4, 4, out)
    top = g.topk(2, dim=1).indices
    m24 = torch.zeros_like(g).scatter_(1, top, 1.0).reshape(kin, out)
    blocks = (torch.rand(kin // 32, out // 32, generator=gen) < 0.1).float()
    mblk = blocks.repeat_interleave(32, 0).repeat_interleave(32, 1)
    mun = (torch.rand(kin, out, generator=gen) < 0.1).float()
    return {"2:4": m24, "block": mblk, "unstructured": mun}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--in", dest="kin", type=int, default=1024)
    ap.add_argument("--out", type=int, default=1024)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(a.batch, a.kin, generator=gen, requires_grad=True)
    w = torch.randn(a.kin, a.out, generator=gen, requires_grad=True)
    dy = torch.randn(a.batch, a.out, generator=gen)
    variants = {"dense": None}
    with torch.no_grad():
        for k, m in masks(w, a.batch, a.out, gen).items():
            variants["dense-mask/" + k] = m

    def step(m):
        x.grad, w.grad = None, None
        y = x @ (w if m is None else w * m)
        y.backward(dy)

    for name, m in variants.items():
        for _ in range(2):
            step(m)
        ts = []
        for _ in range(a.reps):
            t = time.perf_counter()
            step(m)
            ts.append(time.perf_counter() - t)
        ts.sort()
        print(json.dumps({"system": "pytorch", "variant": name, "batch": a.batch, "in": a.kin, "out": a.out,
                          "threads": a.threads, "reps": a.reps, "median_ms": round(ts[len(ts) // 2] * 1e3, 3),
                          "best_ms": round(ts[0] * 1e3, 3)}), flush=True)


if __name__ == "__main__":
    main()
