"""An AlexNet-style network (Krizhevsky, Sutskever & Hinton 2012): ReLU, LRN, overlapping pooling, Dropout.

Five convolutions and three fully-connected layers, as in the paper, with
local response normalisation after the first two convolutions (sec. 3.3),
3x3 stride-2 overlapping max pooling (sec. 3.4) and Dropout 0.5 before the
two hidden fully-connected layers (sec. 4.2). Channel widths are
torchvision's single-GPU ones (64, 192, 384, 256, 256).

For inputs of 64x64 and more the stem is the paper's 11x11 stride-4
convolution and the features are pooled to 6x6 (``AdaptiveAvgPool2d``, as
torchvision). Smaller inputs (MNIST, CIFAR) use a 5x5 stride-1 stem, as the
paper's CIFAR-10 network (cuda-convnet ``layers-18pct``) did, and a narrower
classifier. ``width`` scales every channel count.
"""
from __future__ import annotations

import numpy as np

from core.backend import as_generator
from core.layers import AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from core.module import Sequential

from ._common import check_builder_args

__all__ = ["alexnet"]


def alexnet(num_classes: int = 1000, in_channels: int = 3, input_size=(224, 224), *, width: float = 1.0,
            hidden: int | None = None, lrn: bool = True, dropout: float = 0.5, rng=None,
            dtype=np.float32) -> Sequential:
    """AlexNet-style classifier.

    Args:
        num_classes, in_channels, input_size: classes, image channels, ``(H, W)``.
        width: multiplier of the convolution channels (e.g. 0.5 for a small net).
        hidden: units of the two hidden FC layers (default 4096 for large
            inputs, 512 for small ones).
        lrn: add ``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)`` after conv 1 and 2
            (the paper's ``n=5, alpha=1e-4`` on the plain sum; see ``LocalResponseNorm``).
        dropout: drop probability before each hidden FC layer.
        rng, dtype: weights' (and Dropout masks') seed/Generator and dtype.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``. Children: ``features``
    (a ``Sequential``), ``avgpool``, ``flatten``, ``classifier`` (a ``Sequential``).
    """
    h, w = check_builder_args("alexnet", num_classes, in_channels, input_size)
    if not width > 0:
        raise ValueError(f"alexnet: width must be > 0, got {width!r}")
    rng = as_generator(rng)
    large = min(h, w) >= 64
    c1, c2, c3, c4, c5 = (max(1, int(round(c * width))) for c in (64, 192, 384, 256, 256))
    hidden = hidden if hidden is not None else (4096 if large else 512)

    def conv(cin, cout, k, stride=1, padding=0):
        return Conv2d(cin, cout, k, stride=stride, padding=padding, rng=rng, dtype=dtype)

    stem = conv(in_channels, c1, 11, 4, 2) if large else conv(in_channels, c1, 5, 1, 2)
    feats = [stem, ReLU()]
    if lrn:
        feats.append(LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
    feats += [MaxPool2d(3, stride=2), conv(c1, c2, 5, padding=2), ReLU()]
    if lrn:
        feats.append(LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
    feats += [MaxPool2d(3, stride=2), conv(c2, c3, 3, padding=1), ReLU(), conv(c3, c4, 3, padding=1), ReLU(),
              conv(c4, c5, 3, padding=1), ReLU(), MaxPool2d(3, stride=2)]
    # Spatial size through the three 3x3/2 pools (and the stem's stride for large inputs).
    sizes = []
    for s in (h, w):
        s = (s + 4 - 11) // 4 + 1 if large else s
        for _ in range(3):
            s = (s - 3) // 2 + 1
        sizes.append(s)
    if min(sizes) < 1:
        raise ValueError(f"alexnet: input_size {input_size} is too small for three 3x3 stride-2 poolings "
                         f"(need at least {'63' if large else '15'} pixels per side)")
    pooled = (6, 6) if large else tuple(sizes)
    return Sequential({
        "features": Sequential(*feats),
        "avgpool": AdaptiveAvgPool2d(pooled),
        "flatten": Flatten(),
        "classifier": Sequential(
            Dropout(dropout, rng=rng), Linear(c5 * pooled[0] * pooled[1], hidden, rng=rng, dtype=dtype), ReLU(),
            Dropout(dropout, rng=rng), Linear(hidden, hidden, rng=rng, dtype=dtype), ReLU(),
            Linear(hidden, num_classes, rng=rng, dtype=dtype)),
    })
