"""The book's two convolutional networks, exactly as *Deep Learning from Scratch* builds them.

* ``simple_conv_net`` (ch. 7, ``ch07/simple_convnet.py``): Conv 30@5x5 (stride 1,
  no padding) -> ReLU -> MaxPool 2x2 -> Affine 4320->100 -> ReLU -> Affine 100->10,
  weights drawn from N(0, 0.01^2) (``weight_init_std=0.01``), biases zero.
* ``deep_conv_net`` (ch. 8, ``ch08/deep_convnet.py``): six 3x3 convolutions
  (16, 16, 32, 32, 64, 64 channels; padding 1 except the fourth, padded by 2)
  each followed by ReLU, 2x2 max pooling after every pair, then
  Affine->50, ReLU, Dropout 0.5, Affine->10, Dropout 0.5, with He
  initialisation (std ``sqrt(2 / fan_in)``) everywhere.

Both are ``Sequential`` models whose children carry the book's layer names
in lower case (``conv1``, ``relu1``, ``pool1``, ``fc1`` ...), so the state
dict reads ``conv1.weight``, ``fc1.bias`` and so on. The book scales the
activations by ``1 - p`` at test time; ``core.layers.Dropout`` is the
equivalent inverted form (scale by ``1 / (1 - p)`` while training).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from core.backend import as_generator
from core.functional.im2col import conv_output_size
from core.layers import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from core.module import Sequential

from ._common import check_builder_args

__all__ = ["simple_conv_net", "deep_conv_net", "DEEP_CONV_LAYERS"]


def simple_conv_net(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), *, filters: int = 30,
                    kernel_size: int = 5, hidden: int = 100, init=0.01, rng=None, dtype=np.float32) -> Sequential:
    """The book's ch. 7 ``SimpleConvNet``.

    Args:
        num_classes, in_channels, input_size: classes, image channels, ``(H, W)``.
        filters, kernel_size, hidden: the book's ``filter_num=30``, ``filter_size=5``, ``hidden_size=100``.
        init: weight initialiser: the book's ``weight_init_std=0.01`` by default
            (any ``core.init.get_initializer`` value, e.g. ``"he_normal"``, also works).
        rng: seed or Generator for the initial weights. dtype: parameter dtype.

    Input ``(N, in_channels, H, W)``; output logits ``(N, num_classes)``. For
    28x28 inputs the flattened pool output has ``30 * 12 * 12 = 4320`` features.
    """
    h, w = check_builder_args("simple_conv_net", num_classes, in_channels, input_size)
    rng = as_generator(rng)
    oh = conv_output_size(h, kernel_size, where="simple_conv_net (height)") // 2
    ow = conv_output_size(w, kernel_size, where="simple_conv_net (width)") // 2
    if oh < 1 or ow < 1:
        raise ValueError(f"simple_conv_net: input_size {input_size} is too small for a {kernel_size}x{kernel_size} "
                         "convolution followed by 2x2 pooling")
    return Sequential(OrderedDict([
        ("conv1", Conv2d(in_channels, filters, kernel_size, init=init, rng=rng, dtype=dtype)),
        ("relu1", ReLU()),
        ("pool1", MaxPool2d(2)),
        ("flatten", Flatten()),
        ("fc1", Linear(filters * oh * ow, hidden, init=init, rng=rng, dtype=dtype)),
        ("relu2", ReLU()),
        ("fc2", Linear(hidden, num_classes, init=init, rng=rng, dtype=dtype)),
    ]))


#: ``(out_channels, padding, max-pool after)`` of the DeepConvNet's six 3x3 convolutions.
DEEP_CONV_LAYERS = ((16, 1, False), (16, 1, True), (32, 1, False), (32, 2, True), (64, 1, False), (64, 1, True))


def deep_conv_net(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), *, hidden: int = 50,
                  dropout: float = 0.5, rng=None, dtype=np.float32) -> Sequential:
    """The book's ch. 8 ``DeepConvNet`` (about 99.4% on MNIST in the book).

    Args:
        num_classes, in_channels, input_size: classes, image channels, ``(H, W)``.
        hidden: width of the hidden affine layer (the book's 50).
        dropout: drop probability of both Dropout layers (the book's 0.5).
        rng: seed or Generator for the weights and the Dropout masks. dtype: parameter dtype.

    Input ``(N, in_channels, H, W)``; output logits ``(N, num_classes)``. For
    28x28 inputs the feature map before ``fc1`` is ``64 x 4 x 4 = 1024``.
    """
    h, w = check_builder_args("deep_conv_net", num_classes, in_channels, input_size)
    rng = as_generator(rng)
    layers = OrderedDict()
    c = in_channels
    pools = 0
    for i, (cout, pad, pool) in enumerate(DEEP_CONV_LAYERS, 1):
        # He init: std sqrt(2 / (c * 3 * 3)), the book's pre_node_nums for the convolutions.
        layers[f"conv{i}"] = Conv2d(c, cout, 3, padding=pad, init="he_normal", rng=rng, dtype=dtype)
        layers[f"relu{i}"] = ReLU()
        c, h, w = cout, h + 2 * pad - 2, w + 2 * pad - 2
        if pool:
            pools += 1
            layers[f"pool{pools}"] = MaxPool2d(2)
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"deep_conv_net: input_size {input_size} is too small: the feature map vanishes "
                             f"after conv{i}")
    layers["flatten"] = Flatten()
    layers["fc1"] = Linear(c * h * w, hidden, init="he_normal", rng=rng, dtype=dtype)
    layers["relu7"] = ReLU()
    layers["dropout1"] = Dropout(dropout, rng=rng)
    layers["fc2"] = Linear(hidden, num_classes, init="he_normal", rng=rng, dtype=dtype)
    layers["dropout2"] = Dropout(dropout, rng=rng)
    return Sequential(layers)
