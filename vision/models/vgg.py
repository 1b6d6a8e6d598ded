"""VGG (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks"), torchvision's layout.

``features`` is one ``Sequential`` of 3x3 convolutions (padding 1), optional
BatchNorm, ReLU and 2x2 max pools, so parameter names are torchvision's
(``features.0.weight``, ``features.1.running_mean`` with BN,
``classifier.0.weight``, ``classifier.3.weight``, ``classifier.6.weight``);
``avgpool`` is ``AdaptiveAvgPool2d((7, 7))``. The configurations A, B, D and
E of the paper's Table 1 give VGG-11/13/16/19.

``vgg_small`` keeps a configuration's convolutions but fits 28x28 / 32x32
inputs: it skips a pool once the map is 2x2 or smaller, scales the widths,
and ends in global average pooling, Dropout and one linear layer (the usual
CIFAR adaptation, far fewer parameters than the 4096-wide classifier).
"""
from __future__ import annotations

import numpy as np

from core.backend import as_generator
from core.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from core.module import Sequential

from ._common import check_builder_args

__all__ = ["VGG_CONFIGS", "make_features", "vgg", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
           "vgg19", "vgg19_bn", "vgg_small"]

#: The paper's Table 1: channel counts of the 3x3 convolutions, "M" for a 2x2 max pool.
VGG_CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def make_features(config, in_channels: int, batch_norm: bool, rng, dtype=np.float32, width: float = 1.0,
                  input_size=None) -> tuple[Sequential, int, tuple]:
    """The ``features`` Sequential of a configuration; returns ``(features, out_channels, out_size)``.

    With ``input_size`` given, a pool that would shrink a map of 2 pixels or
    fewer is left out (small inputs); ``out_size`` is then the final ``(H, W)``
    (else None).
    """
    layers = []
    c = in_channels
    size = None if input_size is None else list(input_size)
    for v in config:
        if v == "M":
            if size is not None:
                if min(size) <= 2:
                    continue
                size = [s // 2 for s in size]
            layers.append(MaxPool2d(2, stride=2))
            continue
        out = max(1, int(round(v * width)))
        # torchvision's convs keep their bias even before a BatchNorm; so do we, for its names.
        layers.append(Conv2d(c, out, 3, padding=1, rng=rng, dtype=dtype))
        if batch_norm:
            layers.append(BatchNorm2d(out, dtype=dtype))
        layers.append(ReLU())
        c = out
    return Sequential(*layers), c, (None if size is None else tuple(size))


def vgg(depth: int = 16, batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3,
        input_size=(224, 224), *, hidden: int = 4096, dropout: float = 0.5, rng=None,
        dtype=np.float32) -> Sequential:
    """VGG-``depth`` (11, 13, 16 or 19) exactly as torchvision lays it out.

    Args:
        depth, batch_norm: configuration and whether each conv is followed by BatchNorm.
        num_classes, in_channels, input_size: classes, image channels, ``(H, W)``
            (at least 32x32: five 2x2 pools).
        hidden: width of the two hidden classifier layers (4096 in the paper;
            smaller values keep every name and only change those shapes).
        dropout: drop probability in the classifier. rng, dtype: seed/Generator and dtype.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``; the 512 feature maps
    are average-pooled to 7x7 whatever the input size, so the classifier sees
    ``512 * 7 * 7 = 25088`` features.
    """
    where = f"vgg{depth}{'_bn' if batch_norm else ''}"
    if depth not in VGG_CONFIGS:
        raise ValueError(f"vgg: depth must be one of {sorted(VGG_CONFIGS)}, got {depth!r}")
    h, w = check_builder_args(where, num_classes, in_channels, input_size)
    if min(h, w) < 32:
        raise ValueError(f"{where}: input_size {input_size} is smaller than 32x32 (five 2x2 poolings); "
                         "use vgg_small for 28x28 / 32x32 images")
    rng = as_generator(rng)
    features, c, _ = make_features(VGG_CONFIGS[depth], in_channels, batch_norm, rng, dtype)
    return Sequential({
        "features": features,
        "avgpool": AdaptiveAvgPool2d((7, 7)),
        "flatten": Flatten(),
        "classifier": Sequential(
            Linear(c * 49, hidden, init=0.01, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng),
            Linear(hidden, hidden, init=0.01, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng),
            Linear(hidden, num_classes, init=0.01, rng=rng, dtype=dtype)),
    })


def vgg11(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-11 (configuration A)."""
    return vgg(11, False, num_classes, in_channels, input_size, **kw)


def vgg11_bn(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-11 with BatchNorm after every convolution."""
    return vgg(11, True, num_classes, in_channels, input_size, **kw)


def vgg13(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-13 (configuration B)."""
    return vgg(13, False, num_classes, in_channels, input_size, **kw)


def vgg13_bn(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-13 with BatchNorm."""
    return vgg(13, True, num_classes, in_channels, input_size, **kw)


def vgg16(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-16 (configuration D)."""
    return vgg(16, False, num_classes, in_channels, input_size, **kw)


def vgg16_bn(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-16 with BatchNorm."""
    return vgg(16, True, num_classes, in_channels, input_size, **kw)


def vgg19(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-19 (configuration E)."""
    return vgg(19, False, num_classes, in_channels, input_size, **kw)


def vgg19_bn(num_classes=1000, in_channels=3, input_size=(224, 224), **kw):
    """VGG-19 with BatchNorm."""
    return vgg(19, True, num_classes, in_channels, input_size, **kw)


def vgg_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), *, depth: int = 11,
              batch_norm: bool = True, width: float = 0.25, dropout: float = 0.3, rng=None,
              dtype=np.float32) -> Sequential:
    """A VGG configuration adapted to small images (see the module docstring).

    Args:
        depth: which configuration's convolutions (11, 13, 16, 19).
        batch_norm: BatchNorm after every convolution (recommended).
        width: channel multiplier (0.25: 16 ... 128 channels).
        dropout: before the final linear layer.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``; children ``features``,
    ``avgpool`` (global), ``flatten``, ``classifier`` (``Dropout``, ``Linear``).
    """
    if depth not in VGG_CONFIGS:
        raise ValueError(f"vgg_small: depth must be one of {sorted(VGG_CONFIGS)}, got {depth!r}")
    if not width > 0:
        raise ValueError(f"vgg_small: width must be > 0, got {width!r}")
    h, w = check_builder_args("vgg_small", num_classes, in_channels, input_size)
    rng = as_generator(rng)
    features, c, _ = make_features(VGG_CONFIGS[depth], in_channels, batch_norm, rng, dtype, width, (h, w))
    return Sequential({
        "features": features,
        "avgpool": AdaptiveAvgPool2d((1, 1)),
        "flatten": Flatten(),
        "classifier": Sequential(Dropout(dropout, rng=rng), Linear(c, num_classes, rng=rng, dtype=dtype)),
    })
