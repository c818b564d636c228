"""PyTorch peer of bench/moe: one mixture-of-experts layer written the
straightforward way (router, softmax, top-k, then a loop over experts with
index_select and index_add), forward + backward of the same objective as
expc's bench (sum of the output times a fixed random r, load-balancing and
router z-loss), every gradient including the input's. One JSON line on
stdout.

    python3 bench/moe_torch.py --tokens 4096 --d 256 --experts 8 --hidden 1024 --k 2
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--tokens", type=int, default=4096)
p.add_argument("--d", type=int, default=256)
p.add_argument("--experts", type=int, default=8)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--k", type=int, default=2)
p.add_argument("--reps", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
T, d, E, H, k = a.tokens, a.d, a.experts, a.hidden, a.k
lb, zl, tau = 0.01, 0.001, 1.0

router = torch.nn.Linear(d, E)
experts = torch.nn.ModuleList(
    torch.nn.Sequential(torch.nn.Linear(d, H), torch.nn.ReLU(), torch.nn.Linear(H, d)) for _ in range(E))
x = torch.randn(T, d, requires_grad=True)
r = torch.randn(T, d) / T
params = list(router.parameters()) + list(experts.parameters())


def step():
    for q in params + [x]:
        q.grad = None
    logits = router(x)
    probs = torch.softmax(logits / tau, dim=-1)
    w, idx = probs.topk(k, dim=-1)
    w = w / w.sum(dim=-1, keepdim=True)  # top-k then softmax over the kept logits
    y = torch.zeros_like(x)
    for e in range(E):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        out = experts[e](x.index_select(0, tok))
        y.index_add_(0, tok, out * w[tok, slot].unsqueeze(1))
    f = F.one_hot(idx, E).sum(dim=(0, 1)).float() / (T * k)
    aux = lb * E * (f * probs.mean(dim=0)).sum() + zl * (torch.logsumexp(logits, dim=-1) ** 2).mean()
    loss = (y * r).sum() + aux
    loss.backward()
    return loss.item()


for _ in range(2):
    step()
ts = []
for _ in range(a.reps):
    t = time.perf_counter()
    loss = step()
    ts.append(time.perf_counter() - t)
ts.sort()
med = ts[len(ts) // 2]
routed = T * k
print(json.dumps({"system": "pytorch", "tokens": T, "d": d, "experts": E, "hidden": H, "k": k, "threads": a.threads,
                  "reps": a.reps, "median_ms": med * 1e3, "min_ms": ts[0] * 1e3,
                  "expert_gflops": 6 * 2 * routed * d * H / med / 1e9, "loss": loss,
                  "torch": torch.__version__}))
