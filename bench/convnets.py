"""Training throughput and peak memory of the book's CNNs: zerodl vs PyTorch (batch 100, float32, SGD).

Run: ``python bench/convnets.py [--batches 10] [--repeats 5] [--threads 2]``.

* SimpleConvNet (ch. 7): Conv 30@5x5 -> ReLU -> MaxPool 2 -> Linear 4320->100 -> ReLU -> Linear 100->10.
* DeepConvNet (ch. 8): six 3x3 convs (16, 16, 32, 32, 64, 64; the fourth with padding 2) with ReLU,
  max pooling after each pair, Linear->50, ReLU, Dropout 0.5, Linear->10, Dropout 0.5.

Each (framework, network) pair trains in its own subprocess on the same
generated 28x28 data, with the same thread count for NumPy's BLAS and torch,
so ``ru_maxrss`` (peak resident memory) of one never includes the other.
Throughput is the median images/s over ``--repeats`` timed passes of
``--batches`` mini-batches after a warm-up. Then one large layer (N=32,
64->64 channels, 56x56, 3x3, padding 1) is timed forward and backward and
its GFLOP/s printed next to NumPy's own float32 matrix-product GFLOP/s.
The last line printed is a JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETS = ("simple", "deep")


# ------------------------------------------------------------------- workers
def _data(batch_size: int, batches: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((batches * batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batches * batch_size)
    return x, y


def _time_passes(step, n_batches: int, batch_size: int, repeats: int) -> list[float]:
    for i in range(min(3, n_batches)):  # warm-up: allocator, BLAS thread pool, caches
        step(i)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(n_batches):
            step(i)
        rates.append(n_batches * batch_size / (time.perf_counter() - t))
    return rates


def _zerodl_model(net: str):
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from tests.core.convnets import deep_conv_net, simple_conv_net

    model = (simple_conv_net if net == "simple" else deep_conv_net)(rng=np.random.default_rng(0))
    model[0].requires_input_grad = False  # nobody needs d(loss)/d(images): torch skips it too
    return model


def worker_zerodl(net: str, batch_size: int, batches: int, repeats: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from core.losses import CrossEntropyLoss
    from core.optim import SGD

    x, y = _data(batch_size, batches)
    base = _peak_mb()
    model = _zerodl_model(net)
    loss_fn = CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.01)

    def step(i):
        xb, yb = x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]
        loss_fn(model(xb), yb)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()

    rates = _time_passes(step, batches, batch_size, repeats)
    return {"img_s": statistics.median(rates), "runs": rates, "base_mb": base, "peak_mb": _peak_mb()}


def _torch_model(net: str):
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    if net == "simple":
        return nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10))
    layers, c = [], 1
    for cout, pad, pool in ((16, 1, False), (16, 1, True), (32, 1, False), (32, 2, True), (64, 1, False),
                            (64, 1, True)):
        layers += [nn.Conv2d(c, cout, 3, padding=pad), nn.ReLU()] + ([nn.MaxPool2d(2)] if pool else [])
        c = cout
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(50, 10), nn.Dropout(0.5))


def worker_torch(net: str, batch_size: int, batches: int, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    x, y = _data(batch_size, batches)
    base = _peak_mb()
    model = _torch_model(net)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step(i):
        loss = loss_fn(model(xt[i * batch_size:(i + 1) * batch_size]), yt[i * batch_size:(i + 1) * batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()

    rates = _time_passes(step, batches, batch_size, repeats)
    return {"img_s": statistics.median(rates), "runs": rates, "base_mb": base, "peak_mb": _peak_mb()}


def worker_layer(repeats: int, threads: int) -> dict:
    """GFLOP/s of one large conv layer (zerodl; torch when importable) and of a NumPy matmul."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from core.functional.conv import conv2d_backward, conv2d_forward

    rng = np.random.default_rng(0)
    N, C, O, H, k = 32, 64, 64, 56, 3
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)
    w = (rng.standard_normal((O, C, k, k), dtype=np.float32) * 0.05).astype(np.float32)
    b = np.zeros(O, np.float32)
    flops = 2.0 * N * O * C * k * k * H * H  # output is 56x56 with padding 1

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import median_seconds

    def best(fn):
        return median_seconds(fn, repeats, warmup=True)

    y, cache = conv2d_forward(x, w, b, padding=1)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    t_fwd = best(lambda: conv2d_forward(x, w, b, padding=1))
    t_bwd = best(lambda: conv2d_backward(dy, cache))
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    t_mm = best(lambda: a @ a)
    out = {"layer_fwd_gflops": flops / t_fwd / 1e9, "layer_bwd_gflops": 2 * flops / t_bwd / 1e9,
           "matmul_gflops": 2 * 2048 ** 3 / t_mm / 1e9}
    try:
        import torch
    except ImportError:
        return out
    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(C, O, k, padding=1)
    xt = torch.from_numpy(x).requires_grad_(True)
    dyt = torch.from_numpy(dy)
    with torch.no_grad():
        t_tf = best(lambda: conv(xt))
    yt = conv(xt)

    def torch_bwd():
        xt.grad = None
        conv.zero_grad()
        torch.autograd.backward(yt, dyt, retain_graph=True)

    t_tb = best(torch_bwd)
    out.update(torch_layer_fwd_gflops=flops / t_tf / 1e9, torch_layer_bwd_gflops=2 * flops / t_tb / 1e9)
    return out


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# -------------------------------------------------------------------- parent
def _run_worker(args: argparse.Namespace, what: str, net: str = "") -> dict | None:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", what, "--net", net or "simple",
           "--batches", str(args.batches), "--batch-size", str(args.batch_size), "--repeats", str(args.repeats),
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        if what == "torch" and "No module named 'torch'" in proc.stderr:
            return None
        raise RuntimeError(f"bench worker {what} {net} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=10, help="mini-batches per timed pass")
    ap.add_argument("--batch-size", type=int, default=100, help="images per mini-batch")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes (median reported)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="BLAS / torch threads (the same for both frameworks)")
    ap.add_argument("--worker", choices=("zerodl", "torch", "layer"), help=argparse.SUPPRESS)
    ap.add_argument("--net", choices=NETS, default="simple", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker == "zerodl":
        print(json.dumps(worker_zerodl(args.net, args.batch_size, args.batches, args.repeats)))
        return
    if args.worker == "torch":
        print(json.dumps(worker_torch(args.net, args.batch_size, args.batches, args.repeats, args.threads)))
        return
    if args.worker == "layer":
        print(json.dumps(worker_layer(args.repeats, args.threads)))
        return

    have_torch = _torch_available()
    print(f"book CNNs, batch {args.batch_size}, float32, SGD, {args.threads} thread(s); "
          f"{args.repeats} timed passes of {args.batches} batches; torch {'present' if have_torch else 'absent'}")
    result: dict = {}
    peaks = {"zerodl": 0.0, "torch": 0.0}
    for net in NETS:
        z = _run_worker(args, "zerodl", net)
        t = _run_worker(args, "torch", net) if have_torch else None
        line = f"{net:6s} zerodl {z['img_s']:8.0f} img/s (peak {z['peak_mb']:6.0f} MB)"
        result[f"{net}_zerodl_img_s"] = round(z["img_s"], 1)
        peaks["zerodl"] = max(peaks["zerodl"], z["peak_mb"])
        if t is not None:
            ratio = z["img_s"] / t["img_s"]
            line += f" | torch {t['img_s']:8.0f} img/s (peak {t['peak_mb']:6.0f} MB) | ratio {ratio:.2f} (target >= 0.5)"
            result[f"{net}_torch_img_s"] = round(t["img_s"], 1)
            result[f"{net}_ratio"] = round(ratio, 3)
            peaks["torch"] = max(peaks["torch"], t["peak_mb"])
        print(line)
    result["zerodl_peak_mb"] = round(peaks["zerodl"], 1)
    if have_torch:
        result["torch_peak_mb"] = round(peaks["torch"], 1)
        result["peak_mem_ratio"] = round(peaks["zerodl"] / peaks["torch"], 3)
        print(f"peak resident memory: zerodl {peaks['zerodl']:.0f} MB, torch {peaks['torch']:.0f} MB, "
              f"ratio {peaks['zerodl'] / peaks['torch']:.2f} (target <= 2)")
    layer = _run_worker(args, "layer")
    line = (f"conv layer N=32 64->64 56x56 3x3 pad 1: forward {layer['layer_fwd_gflops']:.1f} GFLOP/s, "
            f"backward {layer['layer_bwd_gflops']:.1f} GFLOP/s; NumPy float32 matmul {layer['matmul_gflops']:.1f} "
            "GFLOP/s")
    if "torch_layer_fwd_gflops" in layer:
        line += (f"; torch forward {layer['torch_layer_fwd_gflops']:.1f}, "
                 f"backward {layer['torch_layer_bwd_gflops']:.1f} GFLOP/s")
    print(line)
    result.update({k: round(v, 1) for k, v in layer.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
