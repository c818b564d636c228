"""PyTorch peer of bench/contrastive: the same contrastive loss, forward +
backward, timed and measured the same way (one JSON line per n).

nt_xent: h[n, d] = 2·(n/2) views, z = normalize(h), S = z·zᵀ/τ with the
diagonal masked, positive of row i = i ± n/2 (SimCLR). dual: a, b [n, d],
S = normalize(a)·normalize(b)ᵀ/τ, positive of row i = column i (InfoNCE,
in-batch negatives). Memory: peak RSS (VmHWM, reset through
/proc/self/clear_refs) over the RSS once the inputs exist.
"""
import argparse, json, os, statistics, time

import torch
import torch.nn.functional as F


def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def loss_fn(objective, inputs, tau):
    if objective == "dual":
        a, b = inputs
        s = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau
        return F.cross_entropy(s, torch.arange(a.shape[0]))
    (h,) = inputs
    n = h.shape[0]
    z = F.normalize(h, dim=1)
    s = (z @ z.T / tau).masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(s, (torch.arange(n) + n // 2) % n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", default="nt_xent")
    ap.add_argument("--n", default="1024,4096,8192")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tau", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for n in map(int, args.n.split(",")):
        g = torch.Generator().manual_seed(1)
        k = 2 if args.objective == "dual" else 1
        inputs = [torch.randn(n, args.d, generator=g).requires_grad_() for _ in range(k)]
        base = rss_kib("VmRSS")
        reset_peak()
        times = []
        for i in range(args.reps + 1):
            for x in inputs:
                x.grad = None
            t = time.perf_counter()
            loss = loss_fn(args.objective, inputs, args.tau)
            loss.backward()
            if i > 0:
                times.append(time.perf_counter() - t)
        peak = rss_kib("VmHWM")
        print(json.dumps({"system": "pytorch", "objective": args.objective, "n": n, "d": args.d,
                          "threads": args.threads, "median_ms": statistics.median(times) * 1e3,
                          "min_ms": min(times) * 1e3, "extra_peak_mib": (peak - base) / 1024,
                          "loss": loss.item(), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
