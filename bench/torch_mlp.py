"""PyTorch peer of bench/specs/mlp256.cue: MLP 784-512-256-10 on Fashion-MNIST,
batch 256, SGD momentum 0.9, lr 0.05, cross-entropy, He-normal weights and
zero biases (expc's init for ReLU), drop the last partial batch (as expc).

    OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=2 python3 bench/torch_mlp.py --threads 2

Rate: a fresh model, --warmup-epochs untimed epochs, then --rate-epochs timed
epochs; samples/s is the median over the timed epochs (training steps only,
the shuffle included, as in expc's samples_per_second).
Accuracy (--accuracy-epochs > 0): per seed of --accuracy-seeds, a fresh
model trained that many epochs, then test-set accuracy; the mean is reported
(seed-to-seed spread after 3 epochs is about a point). Prints one JSON object.
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

import blasinfo
import fmnist


def model(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                      nn.Linear(256, 10))
    for layer in m:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return m


def epoch(m, opt, lossf, x, y, batch, gen):
    """One epoch; returns (samples, seconds)."""
    t = time.perf_counter()
    perm = torch.randperm(x.shape[0], generator=gen)
    steps = x.shape[0] // batch
    for i in range(steps):
        idx = perm[i * batch:(i + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = lossf(m(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return steps * batch, time.perf_counter() - t


def fresh(seed, lr, momentum):
    m = model(seed)
    return m, torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--rate-epochs", type=int, default=3)
    ap.add_argument("--accuracy-epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1, help="seed of the rate run")
    ap.add_argument("--accuracy-seeds", default="1", help="comma-separated seeds of the accuracy runs")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = (torch.from_numpy(np.ascontiguousarray(a)) for a in fmnist.load())
    lossf = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch}

    rates = []
    if args.rate_epochs > 0:
        m, opt = fresh(args.seed, args.lr, args.momentum)
        for _ in range(args.warmup_epochs):
            epoch(m, opt, lossf, xtr, ytr, args.batch, gen)
        for _ in range(args.rate_epochs):
            n, sec = epoch(m, opt, lossf, xtr, ytr, args.batch, gen)
            rates.append(n / sec)
        out["epoch_rates"] = rates
        out["samples_per_second"] = float(np.median(rates))

    if args.accuracy_epochs > 0:
        accs = []
        for seed in (int(s) for s in args.accuracy_seeds.split(",")):
            m, opt = fresh(seed, args.lr, args.momentum)
            g = torch.Generator().manual_seed(seed)
            for _ in range(args.accuracy_epochs):
                epoch(m, opt, lossf, xtr, ytr, args.batch, g)
            with torch.no_grad():
                pred = m(xte).argmax(1)
            accs.append(float((pred == yte).float().mean()))
        out["accuracy_epochs"] = args.accuracy_epochs
        out["test_accuracies"] = accs
        out["test_accuracy"] = float(np.mean(accs))

    out["blas"] = blasinfo.describe()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
