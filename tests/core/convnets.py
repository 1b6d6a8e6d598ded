"""The book's two CNNs (ch. 7 SimpleConvNet, ch. 8 DeepConvNet) built from ``Sequential``, for tests.

Model builders belong to ``vision`` (not ``core``); these small copies let the
``core`` tests and ``bench/convnets.py`` exercise the conv layers on the
exact networks of the book without depending on ``vision``.
"""
from __future__ import annotations

import numpy as np

from core.backend import as_generator
from core.layers import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from core.module import Sequential


def simple_conv_net(input_shape=(1, 28, 28), filters: int = 30, kernel: int = 5, hidden: int = 100,
                    num_classes: int = 10, rng=None, dtype=np.float32) -> Sequential:
    """Conv(filters@kernel) -> ReLU -> MaxPool 2 -> Linear(hidden) -> ReLU -> Linear(num_classes)."""
    rng = as_generator(rng)
    c, h, w = input_shape
    flat = filters * ((h - kernel + 1) // 2) * ((w - kernel + 1) // 2)
    return Sequential(
        Conv2d(c, filters, kernel, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2), Flatten(),
        Linear(flat, hidden, rng=rng, dtype=dtype), ReLU(), Linear(hidden, num_classes, rng=rng, dtype=dtype),
    )


#: (out_channels, padding, pool after) of the DeepConvNet's six 3x3 convolutions.
DEEP_CONVS = ((16, 1, False), (16, 1, True), (32, 1, False), (32, 2, True), (64, 1, False), (64, 1, True))


def deep_conv_net(input_shape=(1, 28, 28), num_classes: int = 10, rng=None, dtype=np.float32) -> Sequential:
    """Six 3x3 convs (16, 16, 32, 32, 64, 64; the fourth with padding 2), each with ReLU and a
    2x2 max pool after every pair, then Linear(50) -> ReLU -> Dropout(0.5) -> Linear -> Dropout(0.5)."""
    rng = as_generator(rng)
    c, h, w = input_shape
    layers = []
    for cout, pad, pool in DEEP_CONVS:
        layers += [Conv2d(c, cout, 3, padding=pad, rng=rng, dtype=dtype), ReLU()]
        c, h, w = cout, h + 2 * pad - 2, w + 2 * pad - 2
        if pool:
            layers.append(MaxPool2d(2))
            h, w = h // 2, w // 2
    layers += [Flatten(), Linear(c * h * w, 50, rng=rng, dtype=dtype), ReLU(), Dropout(0.5, rng=rng),
               Linear(50, num_classes, rng=rng, dtype=dtype), Dropout(0.5, rng=rng)]
    return Sequential(*layers)
