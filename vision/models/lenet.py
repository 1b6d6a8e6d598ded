"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition").

Conv 6@5x5 -> act -> pool 2 -> Conv 16@5x5 -> act -> pool 2 -> FC 120 -> act
-> FC 84 -> act -> FC classes. The paper feeds 32x32 images; for smaller
inputs (MNIST's 28x28) the first convolution pads by 2 so the feature maps
keep the paper's sizes (28 -> 14 -> 10 -> 5). The book (ch. 7.7.1) notes the
original used sigmoid activations and sub-sampling (average pooling) where
today's nets use ReLU and max pooling: both are options here.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from core.backend import as_generator
from core.layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sigmoid, Tanh
from core.module import Sequential

from ._common import check_builder_args

__all__ = ["lenet5"]

_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
_POOLS = {"max": MaxPool2d, "avg": AvgPool2d}


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), *, activation: str = "relu",
           pool: str = "max", padding: int | None = None, rng=None, dtype=np.float32) -> Sequential:
    """LeNet-5.

    Args:
        num_classes, in_channels, input_size: classes, image channels, ``(H, W)``.
        activation: ``"relu"`` (modern), ``"tanh"`` or ``"sigmoid"`` (the paper's era).
        pool: ``"max"`` (modern) or ``"avg"`` (the paper's sub-sampling).
        padding: of the first convolution; default 2 for inputs smaller than
            32x32 and 0 otherwise.
        rng, dtype: weights' seed/Generator and dtype.

    Input ``(N, in_channels, H, W)``; output logits ``(N, num_classes)``.
    Children: ``conv1, act1, pool1, conv2, act2, pool2, flatten, fc1, act3, fc2, act4, fc3``.
    """
    h, w = check_builder_args("lenet5", num_classes, in_channels, input_size)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"lenet5: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    if pool not in _POOLS:
        raise ValueError(f"lenet5: pool must be one of {sorted(_POOLS)}, got {pool!r}")
    if padding is None:
        padding = 2 if min(h, w) < 32 else 0
    rng = as_generator(rng)
    # Spatial size after conv(5, padding) -> pool 2 -> conv(5) -> pool 2.
    sh = ((h + 2 * padding - 4) // 2 - 4) // 2
    sw = ((w + 2 * padding - 4) // 2 - 4) // 2
    if sh < 1 or sw < 1:
        raise ValueError(f"lenet5: input_size {input_size} with padding {padding} is too small; "
                         "need at least 16x16 after padding the first convolution")
    init = "he_normal" if activation == "relu" else "lecun_normal"
    act = _ACTIVATIONS[activation]
    return Sequential(OrderedDict([
        ("conv1", Conv2d(in_channels, 6, 5, padding=padding, init=init, rng=rng, dtype=dtype)),
        ("act1", act()),
        ("pool1", _POOLS[pool](2)),
        ("conv2", Conv2d(6, 16, 5, init=init, rng=rng, dtype=dtype)),
        ("act2", act()),
        ("pool2", _POOLS[pool](2)),
        ("flatten", Flatten()),
        ("fc1", Linear(16 * sh * sw, 120, init=init, rng=rng, dtype=dtype)),
        ("act3", act()),
        ("fc2", Linear(120, 84, init=init, rng=rng, dtype=dtype)),
        ("act4", act()),
        ("fc3", Linear(84, num_classes, init=init, rng=rng, dtype=dtype)),
    ]))
