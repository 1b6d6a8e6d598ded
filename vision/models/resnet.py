"""Residual networks (He et al. 2016, "Deep Residual Learning for Image Recognition").

Reads top-down like torchvision's ``resnet.py``: conv helpers -> ``BasicBlock``
-> ``ResNet`` -> private builder -> public builders that differ only in
configuration. Parameter names and tensor layouts are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``),
so a torchvision ``resnet18``/``resnet34`` state dict loads directly.

Also here: the paper's CIFAR family (sec. 4.2; ``resnet20`` and friends):
a 3x3 stem and three stages of ``n`` basic blocks with 16, 32 and 64
channels, where a stage that halves the resolution uses the parameter-free
"option A" shortcut (subsample, then zero-pad the new channels) or an
"option B" 1x1 projection.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from core.backend import as_generator, get_array_module
from core.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU
from core.module import Module, Sequential

from ._common import check_builder_args, input_grad_off

__all__ = ["conv3x3", "conv1x1", "BasicBlock", "PadShortcut", "ResNet", "resnet18", "resnet34",
           "cifar_resnet", "resnet20", "resnet32", "resnet44", "resnet56"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, rng=None, dtype=np.float32) -> Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False, rng=rng, dtype=dtype)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, rng=None, dtype=np.float32) -> Conv2d:
    """1x1 convolution without bias (projection shortcuts)."""
    return Conv2d(in_planes, out_planes, 1, stride=stride, bias=False, rng=rng, dtype=dtype)


class BasicBlock(Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` (two 3x3 convs).

    Args:
        inplanes, planes: input and output channels.
        stride: stride of ``conv1`` (2 halves the resolution).
        downsample: module mapping ``x`` to the output's shape (torchvision's
            ``Sequential(conv1x1, BatchNorm2d)`` or ``PadShortcut``), or None for
            the identity.
        zero_init_residual: start ``bn2.weight`` at 0 so the block begins as the
            identity (Goyal et al. 2017), which helps deep nets train early on.

    Shapes: ``(N, inplanes, H, W) -> (N, planes, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 zero_init_residual: bool = False, rng=None, dtype=np.float32):
        super().__init__()
        rng = as_generator(rng)
        self.conv1 = conv3x3(inplanes, planes, stride, rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.relu = ReLU()
        self.conv2 = conv3x3(planes, planes, rng=rng, dtype=dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        if zero_init_residual:
            self.bn2.weight.data[...] = 0
        self.downsample = downsample
        self.stride = stride
        self._relu_out = None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + (x if self.downsample is None else self.downsample(x))
        out = get_array_module(out).maximum(out, 0, out=out)  # the sum is a fresh array: rectify in place
        self._relu_out = out
        return out

    def backward(self, dy):
        if self._relu_out is None:
            raise RuntimeError("BasicBlock: backward() called before forward()")
        # The final ReLU, then the sum: both paths receive the same gradient and their input gradients add.
        d_sum = dy * (self._relu_out > 0)
        d_in = self.bn1.backward(self.relu.backward(self.conv2.backward(self.bn2.backward(d_sum))))
        if not self.requires_input_grad:  # lowest trainable block: parameter gradients only
            with input_grad_off(self.conv1):
                self.conv1.backward(d_in)
            if self.downsample is not None and self.downsample.has_trainable():
                with input_grad_off(self.downsample):
                    self.downsample.backward(d_sum)
            return None
        d_body = self.conv1.backward(d_in)
        return d_body + (d_sum if self.downsample is None else self.downsample.backward(d_sum))


class PadShortcut(Module):
    """Option-A shortcut: keep every ``stride``-th pixel and zero-pad to ``out_channels`` (no parameters).

    The new channels are split evenly before and after the old ones, as in the
    common CIFAR ResNet implementations. ``(N, C, H, W) -> (N, out_channels, ceil(H/s), ceil(W/s))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"PadShortcut: out_channels ({out_channels}) must be >= in_channels ({in_channels})")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.before = (out_channels - in_channels) // 2
        self._shape = None

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"

    def forward(self, x):
        xp = get_array_module(x)
        s = self.stride
        sub = x[:, :, ::s, ::s]
        self._shape = x.shape
        out = xp.zeros((x.shape[0], self.out_channels) + sub.shape[2:], dtype=x.dtype)
        out[:, self.before:self.before + self.in_channels] = sub
        return out

    def backward(self, dy):
        if self._shape is None:
            raise RuntimeError("PadShortcut: backward() called before forward()")
        xp = get_array_module(dy)
        s = self.stride
        dx = xp.zeros(self._shape, dtype=dy.dtype)
        dx[:, :, ::s, ::s] = dy[:, self.before:self.before + self.in_channels]
        return dx


class ResNet(Module):
    """A ResNet of ``BasicBlock`` stages with torchvision's names.

    Args:
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes, in_channels: classifier outputs and image channels.
        widths: channels of each stage (torchvision: 64, 128, 256, 512).
        stem: ``"imagenet"``: 7x7 stride-2 conv + 3x3 stride-2 max pool (torchvision);
            ``"cifar"``: one 3x3 stride-1 conv and no pool, for 28x28 / 32x32 inputs.
        shortcut: ``"B"``: 1x1 conv + BN projection where the shape changes
            (``downsample.0`` / ``downsample.1``, torchvision); ``"A"``: ``PadShortcut``.
        zero_init_residual: see ``BasicBlock``. rng, dtype: weights' seed/Generator and dtype.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)`` logits.
    Children: ``conv1, bn1, relu, [maxpool], layer1..layerK, avgpool, flatten, fc``.
    """

    def __init__(self, layers, num_classes: int = 1000, in_channels: int = 3, widths=(64, 128, 256, 512),
                 stem: str = "imagenet", shortcut: str = "B", zero_init_residual: bool = False,
                 rng=None, dtype=np.float32):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"ResNet: stem must be 'imagenet' or 'cifar', got {stem!r}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"ResNet: shortcut must be 'A' (zero-pad) or 'B' (1x1 projection), got {shortcut!r}")
        if len(layers) != len(widths) or not all(isinstance(n, int) and n >= 1 for n in layers):
            raise ValueError(f"ResNet: layers {layers!r} must be positive ints, one per stage width {widths!r}")
        rng = as_generator(rng)
        self.stem, self.shortcut = stem, shortcut
        self.inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False, rng=rng, dtype=dtype)
        else:
            self.conv1 = conv3x3(in_channels, widths[0], rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(widths[0], dtype=dtype)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else None
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(planes, blocks, stride, zero_init_residual, rng, dtype))
        self.num_stages = len(widths)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten()
        self.fc = Linear(widths[-1] * BasicBlock.expansion, num_classes, init="he_normal", rng=rng, dtype=dtype)

    def _make_layer(self, planes, blocks, stride, zero_init_residual, rng, dtype) -> Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "B":
                downsample = Sequential(conv1x1(self.inplanes, planes, stride, rng=rng, dtype=dtype),
                                        BatchNorm2d(planes, dtype=dtype))
            else:
                downsample = PadShortcut(self.inplanes, planes, stride)
        blocks_ = [BasicBlock(self.inplanes, planes, stride, downsample, zero_init_residual, rng, dtype)]
        self.inplanes = planes
        blocks_ += [BasicBlock(planes, planes, 1, None, zero_init_residual, rng, dtype) for _ in range(blocks - 1)]
        return Sequential(*blocks_)

    def _sequence(self):
        """The children in forward order (without the optional max pool when absent)."""
        seq = [self.conv1, self.bn1, self.relu]
        if self.maxpool is not None:
            seq.append(self.maxpool)
        seq += [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]
        return seq + [self.avgpool, self.flatten, self.fc]

    def stage_prefixes(self) -> "OrderedDict[str, list[str]]":
        """Parameter-name prefixes per stage for transfer learning: stem, stage1..N (``layerK``), classifier."""
        out = OrderedDict(stem=["conv1", "bn1"])
        for i in range(self.num_stages):
            out[f"stage{i + 1}"] = [f"layer{i + 1}"]
        out["classifier"] = ["fc"]
        return out

    def embed(self, x):
        """Globally pooled features ``(N, C_last)`` of images ``x (N, C, H, W)``."""
        for m in self._sequence()[:-1]:
            x = m(x)
        return x

    def classifier_head(self) -> Linear:
        """The final ``fc`` layer: what follows ``embed``."""
        return self.fc

    def forward(self, x):
        for m in self._sequence():
            x = m(x)
        return x

    def backward(self, dy):
        seq = self._sequence()
        for m in reversed(seq[1:]):
            dy = m.backward(dy)
        if self.requires_input_grad:
            return self.conv1.backward(dy)
        with input_grad_off(self.conv1):  # nobody needs d(loss)/d(images)
            self.conv1.backward(dy)
        return None


def _resnet(layers, num_classes, in_channels, input_size, stem, where, **kw) -> ResNet:
    h, w = check_builder_args(where, num_classes, in_channels, input_size)
    if stem == "auto":
        stem = "cifar" if min(h, w) < 64 else "imagenet"
    return ResNet(layers, num_classes=num_classes, in_channels=in_channels, stem=stem, **kw)


def resnet18(num_classes: int = 1000, in_channels: int = 3, input_size=(224, 224), *, stem: str = "auto",
             **kw) -> ResNet:
    """ResNet-18 (2, 2, 2, 2 basic blocks), torchvision's names and layouts.

    ``stem="auto"`` uses the torchvision stem for inputs of at least 64x64 and
    the CIFAR stem (3x3 conv, no max pool) below; other keywords go to ``ResNet``.
    """
    return _resnet((2, 2, 2, 2), num_classes, in_channels, input_size, stem, "resnet18", **kw)


def resnet34(num_classes: int = 1000, in_channels: int = 3, input_size=(224, 224), *, stem: str = "auto",
             **kw) -> ResNet:
    """ResNet-34 (3, 4, 6, 3 basic blocks), torchvision's names and layouts (see ``resnet18``)."""
    return _resnet((3, 4, 6, 3), num_classes, in_channels, input_size, stem, "resnet34", **kw)


def cifar_resnet(depth: int = 20, num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), *,
                 widths=(16, 32, 64), shortcut: str = "A", **kw) -> ResNet:
    """The paper's CIFAR ResNet of ``depth = 6n + 2`` layers (sec. 4.2).

    A 3x3 stem with ``widths[0]`` channels, three stages of ``n`` basic blocks
    (``widths``; the 2nd and 3rd halve the resolution), global average pool
    and a linear classifier. ``shortcut="A"`` is the paper's zero-padding
    shortcut; ``"B"`` uses 1x1 projections. ``widths=(32, 64, 128)`` gives a
    2x wider net.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"cifar_resnet: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth!r}")
    n = (depth - 2) // 6
    check_builder_args(f"resnet{depth}", num_classes, in_channels, input_size)
    return ResNet((n, n, n), num_classes=num_classes, in_channels=in_channels, widths=tuple(widths), stem="cifar",
                  shortcut=shortcut, **kw)


def resnet20(num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), **kw) -> ResNet:
    """CIFAR-style ResNet-20 (3 blocks per stage, 0.27 M parameters)."""
    return cifar_resnet(20, num_classes, in_channels, input_size, **kw)


def resnet32(num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), **kw) -> ResNet:
    """CIFAR-style ResNet-32 (5 blocks per stage)."""
    return cifar_resnet(32, num_classes, in_channels, input_size, **kw)


def resnet44(num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), **kw) -> ResNet:
    """CIFAR-style ResNet-44 (7 blocks per stage)."""
    return cifar_resnet(44, num_classes, in_channels, input_size, **kw)


def resnet56(num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), **kw) -> ResNet:
    """CIFAR-style ResNet-56 (9 blocks per stage)."""
    return cifar_resnet(56, num_classes, in_channels, input_size, **kw)
