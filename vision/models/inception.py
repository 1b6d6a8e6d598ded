"""GoogLeNet-style Inception (Szegedy et al. 2015, "Going Deeper with Convolutions").

An ``InceptionBlock`` runs four branches on the same input and concatenates
their outputs along channels (the paper's Figure 2b): a 1x1 convolution;
1x1 reduction -> 3x3; 1x1 reduction -> 5x5; 3x3 max pool (stride 1) -> 1x1
projection. The 1x1 reductions are what keep the block cheap. Every
convolution is ``BasicConv2d`` (conv without bias -> BatchNorm -> ReLU), the
form torchvision's GoogLeNet uses, whose names (``branch1.conv``,
``branch2.0.bn``, ``branch4.1.conv``) this file follows.

``inception_small`` stacks such blocks into a small net for 28x28 / 32x32
images: a 3x3 stem, two blocks, a max pool, two blocks, global average
pooling, Dropout and a linear classifier.
"""
from __future__ import annotations

import numpy as np

from core.backend import as_generator
from core.layers import AdaptiveAvgPool2d, BatchNorm2d, Concat, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from core.module import Module, Sequential

from ._common import check_builder_args, input_grad_off

__all__ = ["BasicConv2d", "InceptionBlock", "inception_small"]


class BasicConv2d(Module):
    """``relu(bn(conv(x)))`` with a bias-free convolution (``conv``, ``bn`` as torchvision).

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, OH, OW)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False,
                           rng=rng, dtype=dtype)
        self.bn = BatchNorm2d(out_channels, eps=1e-3, dtype=dtype)
        self.relu = ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))

    def backward(self, dy):
        d = self.bn.backward(self.relu.backward(dy))
        if self.requires_input_grad:
            return self.conv.backward(d)
        with input_grad_off(self.conv):
            return self.conv.backward(d)


class InceptionBlock(Module):
    """Four parallel branches concatenated along channels.

    Args:
        in_channels: input channels.
        ch1x1: channels of the 1x1 branch.
        ch3x3red, ch3x3: reduction and output channels of the 3x3 branch.
        ch5x5red, ch5x5: reduction and output channels of the 5x5 branch.
        pool_proj: channels of the 1x1 projection after the 3x3 max pool.

    Shapes: ``(N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    Backward splits ``dy`` by branch and sums the four input gradients.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, rng=None, dtype=np.float32):
        super().__init__()
        rng = as_generator(rng)
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1, rng=rng, dtype=dtype)
        self.branch2 = Sequential(BasicConv2d(in_channels, ch3x3red, 1, rng=rng, dtype=dtype),
                                  BasicConv2d(ch3x3red, ch3x3, 3, padding=1, rng=rng, dtype=dtype))
        self.branch3 = Sequential(BasicConv2d(in_channels, ch5x5red, 1, rng=rng, dtype=dtype),
                                  BasicConv2d(ch5x5red, ch5x5, 5, padding=2, rng=rng, dtype=dtype))
        self.branch4 = Sequential(MaxPool2d(3, stride=1, padding=1),
                                  BasicConv2d(in_channels, pool_proj, 1, rng=rng, dtype=dtype))
        self.concat = Concat(axis=1)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}"

    def _branches(self):
        return (self.branch1, self.branch2, self.branch3, self.branch4)

    def forward(self, x):
        return self.concat([b(x) for b in self._branches()])

    def backward(self, dy):
        grads = self.concat.backward(dy)
        if not self.requires_input_grad:  # parameter gradients only (lowest trainable block)
            for b, g in zip(self._branches(), grads):
                with input_grad_off(b):
                    b.backward(g)
            return None
        dx = None
        for b, g in zip(self._branches(), grads):
            d = b.backward(g)
            dx = d if dx is None else dx + d
        return dx


def inception_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), *, width: float = 1.0,
                    dropout: float = 0.2, rng=None, dtype=np.float32) -> Sequential:
    """A small GoogLeNet-style net for 28x28 / 32x32 images.

    stem ``BasicConv2d(in, 64, 3)`` -> MaxPool 2 -> Inception(64 -> 128) ->
    Inception(128 -> 240) -> MaxPool 2 -> Inception(240 -> 256) ->
    Inception(256 -> 320) -> global average pool -> Dropout -> Linear.
    ``width`` scales every channel count. Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``.
    """
    h, w = check_builder_args("inception_small", num_classes, in_channels, input_size)
    if min(h, w) < 4:
        raise ValueError(f"inception_small: input_size {input_size} is too small (two 2x2 poolings need >= 4)")
    if not width > 0:
        raise ValueError(f"inception_small: width must be > 0, got {width!r}")
    rng = as_generator(rng)

    def s(c):
        return max(1, int(round(c * width)))

    stem = s(64)
    a = InceptionBlock(stem, s(32), s(48), s(64), s(8), s(16), s(16), rng=rng, dtype=dtype)
    b = InceptionBlock(a.out_channels, s(64), s(64), s(96), s(16), s(48), s(32), rng=rng, dtype=dtype)
    c = InceptionBlock(b.out_channels, s(64), s(48), s(104), s(8), s(40), s(48), rng=rng, dtype=dtype)
    d = InceptionBlock(c.out_channels, s(96), s(64), s(128), s(16), s(48), s(48), rng=rng, dtype=dtype)
    return Sequential({
        "stem": BasicConv2d(in_channels, stem, 3, padding=1, rng=rng, dtype=dtype),
        "pool1": MaxPool2d(2),
        "inception3a": a,
        "inception3b": b,
        "pool2": MaxPool2d(2),
        "inception4a": c,
        "inception4b": d,
        "avgpool": AdaptiveAvgPool2d((1, 1)),
        "flatten": Flatten(),
        "dropout": Dropout(dropout, rng=rng),
        "fc": Linear(d.out_channels, num_classes, rng=rng, dtype=dtype),
    })
