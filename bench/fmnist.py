"""Fashion-MNIST for the Python peers, prepared the way expc prepares it.

expc (data/idx.go) scales pixels to [0,1] and then standardises them with the
training split's global mean and std; the test split uses the training
statistics. Doing the same here keeps the peers' accuracy comparable.
"""

import gzip
import os

import numpy as np

DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")


def _read(name, offset):
    path = os.path.join(DIR, name)
    opener = gzip.open if path.endswith(".gz") else open
    if not os.path.exists(path) and os.path.exists(path[:-3]):
        path, opener = path[:-3], open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load():
    """Returns (xtrain, ytrain, xtest, ytest): float32 [N,784], int64 [N]."""
    xtr = _read("train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255
    ytr = _read("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xte = _read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255
    yte = _read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    mean, std = float(xtr.mean()), float(xtr.std())
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std
    return xtr, ytr, xte, yte
