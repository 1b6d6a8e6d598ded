"""Float64 finite-difference checks of every convolutional layer through the shared harness.

Configurations cover stride > 1, padding (symmetric, asymmetric, "same"),
dilation, groups (incl. depthwise), odd sizes, ceil mode, overlapping pools,
both interpolation modes and the sample-blocked code path.
"""
import numpy as np
import pytest

from core.functional import conv as C
from core.layers import (AdaptiveAvgPool2d, AvgPool2d, Concat, Conv2d, ConvTranspose2d, GlobalAvgPool2d,
                         LocalResponseNorm, MaxPool2d, ReLU, Upsample, ZeroPad2d)
from core.module import Sequential
from tests.harness import assert_module_gradients


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


CONVS = [
    ("3x3", dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 5, 6)),
    ("pad 1 stride 2 odd", dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1), (2, 2, 7, 5)),
    ("rect kernel, stride (2,1)", dict(in_channels=2, out_channels=2, kernel_size=(2, 3), stride=(2, 1),
                                       padding=(1, 0)), (1, 2, 6, 7)),
    ("dilation 2", dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, padding=1), (2, 2, 7, 6)),
    ("dilation + stride", dict(in_channels=2, out_channels=2, kernel_size=2, dilation=(1, 2), stride=2), (1, 2, 7, 8)),
    ("groups 2", dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1), (1, 4, 5, 4)),
    ("depthwise stride 2", dict(in_channels=3, out_channels=6, kernel_size=3, groups=3, stride=2, padding=1),
     (2, 3, 5, 5)),
    ("same, even kernel", dict(in_channels=2, out_channels=2, kernel_size=4, padding="same"), (1, 2, 5, 6)),
    ("asymmetric pad", dict(in_channels=2, out_channels=2, kernel_size=3, padding=(0, 2, 1, 0)), (1, 2, 5, 5)),
    ("pad > span", dict(in_channels=1, out_channels=2, kernel_size=2, padding=3), (1, 1, 3, 4)),
    ("no bias 1x1", dict(in_channels=3, out_channels=2, kernel_size=1, bias=False), (2, 3, 3, 2)),
    ("5x5 book", dict(in_channels=1, out_channels=2, kernel_size=5), (2, 1, 8, 7)),
]


@pytest.mark.parametrize("name,kwargs,shape", CONVS, ids=[c[0] for c in CONVS])
def test_conv2d_gradients(name, kwargs, shape):
    assert_module_gradients(Conv2d(**kwargs, rng=1), data(shape))


TRANSPOSES = [
    ("stride 2", dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1),
     (1, 2, 3, 4)),
    ("stride 1 pad", dict(in_channels=2, out_channels=2, kernel_size=3, padding=1), (2, 2, 4, 3)),
    ("dilation, out pad", dict(in_channels=2, out_channels=2, kernel_size=2, dilation=2, output_padding=1),
     (1, 2, 3, 3)),
    ("groups, rect", dict(in_channels=4, out_channels=2, kernel_size=(2, 3), stride=(2, 1), groups=2),
     (1, 4, 3, 3)),
]


@pytest.mark.parametrize("name,kwargs,shape", TRANSPOSES, ids=[c[0] for c in TRANSPOSES])
def test_conv_transpose2d_gradients(name, kwargs, shape):
    assert_module_gradients(ConvTranspose2d(**kwargs, rng=2), data(shape, 1))


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_gradients_across_sample_blocks(monkeypatch, stride):
    """Blocks of one sample each: the per-block products and dW accumulation must add up."""
    monkeypatch.setattr(C, "BLOCK_BYTES", 1)
    assert_module_gradients(Conv2d(2, 3, 3, stride=stride, padding=1, rng=3), data((3, 2, 5, 5), 2))
    assert_module_gradients(ConvTranspose2d(2, 3, 3, stride=stride, padding=1, rng=4), data((3, 2, 3, 3), 3))


POOLS = [
    ("max 2", lambda: MaxPool2d(2), (2, 2, 4, 6)),
    ("max 2 odd", lambda: MaxPool2d(2), (1, 2, 5, 7)),
    ("max 3 s2 p1", lambda: MaxPool2d(3, 2, 1), (1, 2, 7, 6)),
    ("max 3 s1 overlap", lambda: MaxPool2d(3, 1), (1, 2, 5, 5)),
    ("max ceil", lambda: MaxPool2d(2, ceil_mode=True), (1, 2, 5, 5)),
    ("max dilation", lambda: MaxPool2d(2, 1, dilation=2), (1, 2, 5, 5)),
    ("avg 2", lambda: AvgPool2d(2), (2, 2, 4, 6)),
    ("avg 3 s2 p1", lambda: AvgPool2d(3, 2, 1), (1, 2, 7, 6)),
    ("avg excl pad ceil", lambda: AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 6, 5)),
    ("adaptive uneven", lambda: AdaptiveAvgPool2d((3, 2)), (1, 2, 7, 5)),
    ("adaptive uniform", lambda: AdaptiveAvgPool2d((2, 3)), (1, 2, 4, 6)),
    ("global", lambda: GlobalAvgPool2d(), (2, 3, 3, 4)),
    ("nearest x2", lambda: Upsample(scale_factor=2), (1, 2, 3, 4)),
    ("nearest size", lambda: Upsample(size=(5, 7)), (1, 2, 3, 4)),
    ("bilinear x2", lambda: Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 4)),
    ("bilinear corners", lambda: Upsample(size=(7, 5), mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    ("bilinear down", lambda: Upsample(size=(2, 3), mode="bilinear"), (1, 2, 5, 7)),
    ("zero pad", lambda: ZeroPad2d((1, 0, 2, 1)), (1, 2, 3, 4)),
    ("lrn 3", lambda: LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.0), (2, 5, 2, 3)),
    ("lrn 4", lambda: LocalResponseNorm(4, alpha=0.5, beta=0.6, k=2.0), (1, 6, 2, 2)),
]


@pytest.mark.parametrize("name,make,shape", POOLS, ids=[p[0] for p in POOLS])
def test_parameter_free_layer_gradients(name, make, shape):
    # Max pooling has a kink where two entries tie; distinct, well separated values avoid it.
    x = np.random.default_rng(4).permutation(np.prod(shape)).reshape(shape) * 0.1 if "max" in name else data(shape)
    assert_module_gradients(make(), x)


def test_concat_gradients():
    assert_module_gradients(Concat(), data((2, 3, 2, 2)), data((2, 1, 2, 2), 1))


def test_small_cnn_gradients_through_channel_major_views():
    """Conv outputs are channel-major views; the next layers must handle their strides."""
    rng = np.random.default_rng(5)
    net = Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Conv2d(3, 4, 3, stride=2, rng=rng),
                     Upsample(scale_factor=2, mode="bilinear"), ConvTranspose2d(4, 2, 2, stride=2, rng=rng))
    x = np.random.default_rng(6).permutation(2 * 2 * 10 * 10).reshape(2, 2, 10, 10) * 0.01
    assert_module_gradients(net, x)
