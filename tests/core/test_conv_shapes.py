"""Output shapes of the convolutional layers over a table of configurations, the size formula's
edge cases, the book's im2col/col2im, and the errors raised for invalid combinations."""
import numpy as np
import pytest

from core.functional import conv as C
from core.functional import pooling as P
from core.layers import (AdaptiveAvgPool2d, AvgPool2d, Concat, Conv2d, ConvTranspose2d, GlobalAvgPool2d,
                         LocalResponseNorm, MaxPool2d, Upsample, ZeroPad2d)

# (size, kernel, stride, padding, dilation, ceil_mode, expected): OH = floor((H + 2P - D(K-1) - 1) / S) + 1
SIZE_TABLE = [
    (28, 5, 1, 0, 1, False, 24),   # the book's SimpleConvNet conv
    (24, 2, 2, 0, 1, False, 12),   # its pooling
    (28, 3, 1, 1, 1, False, 28),   # "same" 3x3
    (14, 3, 1, 2, 1, False, 16),   # DeepConvNet's 4th conv (padding 2 grows the map)
    (7, 7, 1, 0, 1, False, 1),     # kernel exactly covers the input
    (5, 7, 1, 1, 1, False, 1),     # ... the padded input
    (7, 3, 2, 0, 1, False, 3),     # (7 - 3) / 2 + 1 = 3 exactly
    (8, 3, 2, 0, 1, False, 3),     # (8 - 3) / 2 = 2.5: floor
    (8, 3, 2, 0, 1, True, 4),      # ... ceil
    (9, 3, 1, 0, 2, False, 5),     # dilation 2: span 5
    (1, 1, 1, 0, 1, False, 1),
    (1, 3, 3, 1, 1, False, 1),
    (224, 7, 2, 3, 1, False, 112),  # ResNet stem
    (112, 3, 2, 1, 1, False, 56),   # ResNet max pool
]


@pytest.mark.parametrize("size,k,s,p,d,ceil,expected", SIZE_TABLE)
def test_conv_output_size_table(size, k, s, p, d, ceil, expected):
    assert C.conv_output_size(size, k, s, p, d, ceil_mode=ceil) == expected


def test_conv_output_size_errors_name_the_caller_and_sizes():
    with pytest.raises(ValueError, match=r"Conv2d\(x\): kernel 5 is larger than the padded input 3 \+ 0 \+ 0 = 3"):
        C.conv_output_size(3, 5, where="Conv2d(x)")
    with pytest.raises(ValueError, match=r"dilation 3: spans 7"):
        C.conv_output_size(6, 3, dilation=3)
    with pytest.raises(ValueError, match=r"not divisible by stride 2: output size 3.5 is not an integer"):
        C.conv_output_size(8, 3, 2, exact=True)
    assert C.conv_output_size(7, 3, 2, exact=True) == 3
    assert C.conv_output_size(10, 3, 1, (0, 2)) == 10  # asymmetric padding


CONV_TABLE = [
    # (kwargs, input shape, output shape)
    (dict(in_channels=1, out_channels=30, kernel_size=5), (2, 1, 28, 28), (2, 30, 24, 24)),
    (dict(in_channels=3, out_channels=8, kernel_size=3, padding=1), (2, 3, 9, 7), (2, 8, 9, 7)),
    (dict(in_channels=3, out_channels=8, kernel_size=3, stride=2, padding=1), (2, 3, 9, 7), (2, 8, 5, 4)),
    (dict(in_channels=3, out_channels=8, kernel_size=(3, 5), stride=(2, 1), padding=(0, 2)), (1, 3, 10, 6),
     (1, 8, 4, 6)),
    (dict(in_channels=4, out_channels=4, kernel_size=3, dilation=2), (1, 4, 9, 9), (1, 4, 5, 5)),
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding="same"), (1, 4, 6, 5), (1, 6, 6, 5)),
    (dict(in_channels=4, out_channels=4, kernel_size=4, padding="same"), (1, 4, 7, 6), (1, 4, 7, 6)),
    (dict(in_channels=6, out_channels=6, kernel_size=3, groups=6, stride=2), (3, 6, 11, 11), (3, 6, 5, 5)),
    (dict(in_channels=2, out_channels=3, kernel_size=1), (5, 2, 1, 1), (5, 3, 1, 1)),
    (dict(in_channels=2, out_channels=3, kernel_size=3, padding=(1, 0, 2, 0)), (1, 2, 5, 5), (1, 3, 4, 5)),
]


@pytest.mark.parametrize("kwargs,in_shape,out_shape", CONV_TABLE)
def test_conv2d_shapes(kwargs, in_shape, out_shape):
    layer = Conv2d(**kwargs, rng=0)
    x = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    y = layer(x)
    assert y.shape == out_shape and y.dtype == np.float32
    assert layer.weight.shape == (kwargs["out_channels"], kwargs["in_channels"] // kwargs.get("groups", 1),
                                  *C.pair(kwargs["kernel_size"], "k", "t"))
    assert layer.backward(np.ones_like(y)).shape == in_shape


TRANSPOSE_TABLE = [
    (dict(in_channels=4, out_channels=2, kernel_size=2, stride=2), (1, 4, 5, 6), (1, 2, 10, 12)),
    (dict(in_channels=4, out_channels=2, kernel_size=3, stride=2, padding=1), (1, 4, 5, 6), (1, 2, 9, 11)),
    (dict(in_channels=4, out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1), (1, 4, 5, 6),
     (1, 2, 10, 12)),
    (dict(in_channels=2, out_channels=2, kernel_size=3), (1, 2, 4, 4), (1, 2, 6, 6)),
    (dict(in_channels=4, out_channels=6, kernel_size=(1, 3), stride=(1, 3), groups=2), (2, 4, 3, 3),
     (2, 6, 3, 9)),
]


@pytest.mark.parametrize("kwargs,in_shape,out_shape", TRANSPOSE_TABLE)
def test_conv_transpose2d_shapes(kwargs, in_shape, out_shape):
    layer = ConvTranspose2d(**kwargs, rng=0)
    x = np.ones(in_shape, np.float32)
    y = layer(x)
    assert y.shape == out_shape
    assert layer.weight.shape[:2] == (kwargs["in_channels"], kwargs["out_channels"] // kwargs.get("groups", 1))
    assert layer.backward(np.ones_like(y)).shape == in_shape


def test_conv_transpose_inverts_conv_output_size():
    """A strided ConvTranspose2d maps a Conv2d's output size back to its input size."""
    for H in range(5, 13):
        conv = Conv2d(1, 1, 3, stride=2, padding=1)
        h = conv(np.zeros((1, 1, H, H), np.float32)).shape[2]
        up = ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=(H + 1) % 2)
        assert up(np.zeros((1, 1, h, h), np.float32)).shape[2] == H


POOL_TABLE = [
    (lambda: MaxPool2d(2), (2, 3, 24, 24), (2, 3, 12, 12)),
    (lambda: MaxPool2d(2), (2, 3, 7, 9), (2, 3, 3, 4)),
    (lambda: MaxPool2d(2, ceil_mode=True), (2, 3, 7, 9), (2, 3, 4, 5)),
    (lambda: MaxPool2d(3, 2, 1), (1, 1, 112, 112), (1, 1, 56, 56)),
    (lambda: MaxPool2d(3, 2, 1, ceil_mode=True), (1, 1, 6, 6), (1, 1, 4, 4)),
    # ceil_mode drops a last window that would start in the right padding (PyTorch's rule)
    (lambda: MaxPool2d(2, 2, 1, ceil_mode=True), (1, 1, 5, 5), (1, 1, 3, 3)),  # not ceil(2.5) + 1 = 4
    (lambda: MaxPool2d((2, 3), (1, 2)), (1, 1, 5, 7), (1, 1, 4, 3)),
    (lambda: AvgPool2d(2), (2, 3, 8, 9), (2, 3, 4, 4)),
    (lambda: AvgPool2d(3, 1, 1), (2, 3, 8, 9), (2, 3, 8, 9)),
    (lambda: AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 9), (2, 3, 3, 2)),
    (lambda: AdaptiveAvgPool2d(7), (2, 3, 3, 4), (2, 3, 7, 7)),
    (lambda: AdaptiveAvgPool2d((None, 1)), (2, 3, 5, 4), (2, 3, 5, 1)),
    (lambda: GlobalAvgPool2d(), (2, 3, 5, 4), (2, 3, 1, 1)),
    (lambda: Upsample(scale_factor=2), (2, 3, 5, 4), (2, 3, 10, 8)),
    (lambda: Upsample(scale_factor=(1.5, 0.5), mode="bilinear"), (2, 3, 5, 4), (2, 3, 7, 2)),
    (lambda: Upsample(size=(9, 3), mode="bilinear", align_corners=True), (2, 3, 5, 4), (2, 3, 9, 3)),
    (lambda: ZeroPad2d(2), (2, 3, 5, 4), (2, 3, 9, 8)),
    (lambda: ZeroPad2d((1, 0, 3, 2)), (2, 3, 5, 4), (2, 3, 10, 5)),
    (lambda: LocalResponseNorm(5), (2, 7, 5, 4), (2, 7, 5, 4)),
]


@pytest.mark.parametrize("make,in_shape,out_shape", POOL_TABLE)
def test_parameter_free_layer_shapes(make, in_shape, out_shape):
    layer = make()
    x = np.random.default_rng(1).standard_normal(in_shape).astype(np.float32)
    y = layer(x)
    assert y.shape == out_shape and y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == in_shape and dx.dtype == np.float32


def test_concat_shapes_and_split():
    cat = Concat()
    a, b = np.ones((2, 3, 4, 5), np.float32), np.zeros((2, 1, 4, 5), np.float32)
    y = cat([a, b])
    assert y.shape == (2, 4, 4, 5)
    da, db = cat.backward(np.arange(y.size, dtype=np.float32).reshape(y.shape))
    assert da.shape == a.shape and db.shape == b.shape
    np.testing.assert_array_equal(db[:, 0], np.arange(y.size, dtype=np.float32).reshape(y.shape)[:, 3])
    with pytest.raises(ValueError, match=r"Concat\(axis=1\): input1 has shape \(2, 1, 3, 5\)"):
        cat([a, np.zeros((2, 1, 3, 5), np.float32)])


def test_conv_output_is_channel_major_view_with_ordinary_values():
    conv = Conv2d(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(2).standard_normal((4, 2, 5, 5)).astype(np.float32)
    y = conv(x)
    cols = C.im2col(x, 3, padding=1)  # (N*OH*OW, C*9)
    ref = (cols @ conv.weight.data.reshape(3, -1).T).reshape(4, 5, 5, 3).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert not y.flags.c_contiguous
    np.testing.assert_array_equal(np.ascontiguousarray(y), y)


# ----------------------------------------------------------------- im2col / col2im
def naive_im2col(x, kh, kw, stride, pad):
    """The book's definition, written as plain loops (the reference, not the implementation)."""
    N, Cc, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    rows = []
    for n in range(N):
        for i in range(oh):
            for j in range(ow):
                rows.append(xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw].ravel())
    return np.array(rows)


@pytest.mark.parametrize("kh,kw,stride,pad", [(3, 3, 1, 0), (3, 3, 1, 1), (2, 3, 2, 1), (5, 5, 3, 2), (1, 1, 1, 0)])
def test_im2col_matches_book_definition_and_col2im_is_its_adjoint(kh, kw, stride, pad):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 8))
    col = C.im2col(x, (kh, kw), stride, pad)
    np.testing.assert_array_equal(col, naive_im2col(x, kh, kw, stride, pad))
    c = rng.standard_normal(col.shape)
    back = C.col2im(c, x.shape, (kh, kw), stride, pad)
    assert back.shape == x.shape
    # <im2col(x), c> == <x, col2im(c)>: col2im sums overlapping windows (what backward needs)
    np.testing.assert_allclose(np.sum(col * c), np.sum(x * back), rtol=1e-12)
    cols = C.unfold(x, (kh, kw), stride, pad)
    assert cols.shape == (2, 3 * kh * kw, col.shape[0] // 2)
    np.testing.assert_allclose(C.fold(cols, (7, 8), (kh, kw), stride, pad),
                               C.col2im(col, x.shape, (kh, kw), stride, pad), rtol=1e-12)


def test_col2im_counts_window_coverage():
    x = np.ones((1, 1, 4, 4))
    back = C.col2im(C.im2col(x, 3), x.shape, 3)
    np.testing.assert_array_equal(back[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_im2col_col2im_errors():
    with pytest.raises(ValueError, match=r"im2col \(height\): kernel 5 is larger than the padded input 4"):
        C.im2col(np.zeros((1, 1, 4, 9)), 5)
    with pytest.raises(ValueError, match=r"im2col: expected input \(N, C, H, W\)"):
        C.im2col(np.zeros((4, 9)), 3)
    with pytest.raises(ValueError, match=r"col2im: col has shape \(3, 9\), expected"):
        C.col2im(np.zeros((3, 9)), (1, 1, 4, 4), 3)


# ------------------------------------------------------------------------- errors
def test_conv2d_errors_name_layer_and_sizes():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, kernel_size=\(5, 5\).*kernel 5 is larger than the padded "
                                         r"input 4 \+ 0 \+ 0 = 4"):
        Conv2d(3, 4, 5)(np.zeros((1, 3, 4, 9), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\), got shape \(1, 2, 8, 8\)"):
        Conv2d(3, 4, 3)(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\), got shape \(3, 8, 8\)"):
        Conv2d(3, 4, 3)(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(TypeError, match=r"Conv2d.*expected a floating-point input array, got dtype uint8"):
        Conv2d(3, 4, 3)(np.zeros((1, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"Conv2d: in_channels=3 and out_channels=4 must both be divisible by groups=2"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: padding='same' needs stride 1"):
        Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"Conv2d: padding must be an int, a pair, a 4-tuple, 'same' or 'valid'"):
        Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Conv2d: stride must be >= 1, got 0"):
        Conv2d(3, 4, 3, stride=0)
    with pytest.raises(TypeError, match=r"Conv2d: kernel_size must be an int or a pair of ints, got 2.5"):
        Conv2d(3, 4, 2.5)
    with pytest.raises(RuntimeError, match=r"Conv2d: backward\(\) called before forward\(\)"):
        Conv2d(3, 4, 3).backward(np.zeros((1, 4, 2, 2), np.float32))
    conv = Conv2d(3, 4, 3)
    conv(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"conv2d_backward: dy has shape \(1, 4, 2, 2\), expected \(1, 4, 3, 3\)"):
        conv.backward(np.zeros((1, 4, 2, 2), np.float32))


def test_conv_transpose_and_pool_errors():
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_padding \(2, 2\) must be smaller than stride"):
        ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"non-positive output size"):
        ConvTranspose2d(2, 2, 1, padding=1)(np.zeros((1, 2, 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"):
        MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=\(5, 5\).*kernel 5 is larger than the padded input 4"):
        MaxPool2d(5)(np.zeros((1, 1, 4, 8), np.float32))
    with pytest.raises(ValueError, match=r"AvgPool2d.*expected input \(N, C, H, W\), got shape \(4, 8\)"):
        AvgPool2d(2)(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match=r"Upsample: give exactly one of size and scale_factor"):
        Upsample()
    with pytest.raises(ValueError, match=r"Upsample: align_corners applies to bilinear mode only"):
        Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"Upsample: mode must be one of"):
        Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d: output_size entries must be positive ints or None"):
        AdaptiveAvgPool2d(0)
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be >= 0"):
        ZeroPad2d(-1)
    with pytest.raises(ValueError, match=r"LocalResponseNorm: size must be a positive int"):
        LocalResponseNorm(0)


def test_pool_geometry_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"pool2d: expected input \(N, C, H, W\)"):
        P.pool_geometry((3, 4), 2)


@pytest.mark.parametrize("make", [lambda: Conv2d(2, 3, 3, padding=1), lambda: Conv2d(2, 3, 3, stride=2),
                                  lambda: ConvTranspose2d(2, 3, 2, stride=2), lambda: MaxPool2d(2),
                                  lambda: Upsample(scale_factor=2, mode="bilinear")])
def test_empty_batch(make):
    layer = make()
    y = layer(np.zeros((0, 2, 6, 6), np.float32))
    assert y.shape[0] == 0
    assert layer.backward(np.zeros(y.shape, np.float32)).shape == (0, 2, 6, 6)
