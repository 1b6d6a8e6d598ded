"""Training throughput of a 784-256-256-10 MLP (batch 128, float32, Adam): zerodl vs PyTorch.

Run: ``python bench/mlp.py [--batches 200] [--repeats 5]``. Both frameworks
train the same network on the same generated data with the same thread
count, in this one process; the figures are medians over ``--repeats`` timed
passes after a warm-up. The last line printed is a JSON object of the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.layers import Linear, ReLU  # noqa: E402
from core.losses import CrossEntropyLoss  # noqa: E402
from core.module import Sequential  # noqa: E402
from core.optim import Adam  # noqa: E402


def make_data(batches: int, batch_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((batches * batch_size, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=batches * batch_size)
    return x, y


def blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info

        return max((i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"), default=1)
    except ImportError:
        return os.cpu_count() or 1


def zerodl_pass(x, y, batch_size: int):
    rng = np.random.default_rng(0)
    model = Sequential(Linear(784, 256, rng=rng), ReLU(), Linear(256, 256, rng=rng), ReLU(), Linear(256, 10, rng=rng))
    model.requires_input_grad = False
    loss_fn = CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=1e-3)
    n_batches = len(x) // batch_size

    def one_pass():
        for i in range(n_batches):
            xb = x[i * batch_size:(i + 1) * batch_size]
            yb = y[i * batch_size:(i + 1) * batch_size]
            loss_fn(model(xb), yb)
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()

    return one_pass


def torch_pass(x, y, batch_size: int, threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_batches = len(x) // batch_size

    def one_pass():
        for i in range(n_batches):
            xb = xt[i * batch_size:(i + 1) * batch_size]
            yb = yt[i * batch_size:(i + 1) * batch_size]
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return one_pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200, help="mini-batches per timed pass")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5, help="timed passes (median reported)")
    args = ap.parse_args()
    x, y = make_data(args.batches, args.batch_size)
    threads = blas_threads()
    print(f"MLP 784-256-256-10, batch {args.batch_size}, Adam, float32, {threads} BLAS thread(s)")
    passes = {"zerodl": zerodl_pass(x, y, args.batch_size)}
    torch_one = torch_pass(x, y, args.batch_size, threads)
    if torch_one is not None:
        passes["pytorch"] = torch_one
    rates = {name: [] for name in passes}
    for one_pass in passes.values():
        one_pass()  # warm-up
    # Interleave the timed passes so machine noise hits both frameworks alike.
    for _ in range(args.repeats):
        for name, one_pass in passes.items():
            t = time.perf_counter()
            one_pass()
            rates[name].append(len(x) / (time.perf_counter() - t))
    med = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"{name:7s}: {med[name]:9.0f} img/s (runs: {', '.join(f'{v:.0f}' for v in r)})")
    result = {"zerodl_img_s": round(med["zerodl"])}
    if "pytorch" in med:
        ratio = med["zerodl"] / med["pytorch"]
        print(f"ratio zerodl/pytorch: {ratio:.2f} (target >= 0.8)")
        result.update(torch_img_s=round(med["pytorch"]), ratio=round(ratio, 3))
    else:
        print("pytorch not importable: no ratio")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
