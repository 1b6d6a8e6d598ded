"""Pooling kernels: max, average and adaptive average pooling over ``(N, C, H, W)``.

Max and average pooling loop over the ``kh * kw`` kernel offsets only; each
step is one whole-array operation on a strided slice of the (padded) input,
so nothing proportional to the number of pixels runs in Python and no
window-sized temporaries are built. Output sizes follow PyTorch, including
``ceil_mode`` (a last, partial window is kept only if it starts inside the
input or its left padding).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from .im2col import conv_output_size, pair

__all__ = [
    "PoolGeometry", "check_pool_padding", "pool_geometry", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "adaptive_pool_bins",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
]


class PoolGeometry(NamedTuple):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    extra: tuple[int, int]  # rows/cols past the bottom/right padding that ceil_mode windows reach


def _pool_size(size, k, s, p, d, ceil_mode, where):
    out = conv_output_size(size, k, s, p, d, ceil_mode=ceil_mode, where=where)
    # PyTorch: with ceil_mode the last window must start inside the input or its left padding.
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    extra = max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
    return out, extra


def check_pool_padding(kernel, padding, dilation, where: str) -> None:
    """PyTorch's rule: padding at most half the (dilated) kernel, so no window is all padding."""
    for a in range(2):
        if padding[a] > (dilation[a] * (kernel[a] - 1) + 1) // 2:
            raise ValueError(
                f"{where}: padding {tuple(padding)} must be at most half the kernel size {tuple(kernel)}"
                f"{'' if tuple(dilation) == (1, 1) else f' (dilated by {tuple(dilation)})'}"
            )


def pool_geometry(x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                  where: str = "pool2d") -> PoolGeometry:
    """Validate pooling hyper-parameters against an input shape ``(N, C, H, W)``.

    ``stride=None`` means ``stride = kernel_size`` (PyTorch's default). Padding
    is at most half the (dilated) kernel, as PyTorch requires.
    """
    if len(x_shape) != 4:
        raise ValueError(f"{where}: expected input (N, C, H, W), got shape {tuple(x_shape)}")
    k = pair(kernel_size, "kernel_size", where)
    s = k if stride is None else pair(stride, "stride", where)
    d = pair(dilation, "dilation", where)
    p = pair(padding, "padding", where, minimum=0)
    check_pool_padding(k, p, d, where)
    H, W = x_shape[2:]
    oh, eh = _pool_size(H, k[0], s[0], p[0], d[0], ceil_mode, f"{where} (height)")
    ow, ew = _pool_size(W, k[1], s[1], p[1], d[1], ceil_mode, f"{where} (width)")
    return PoolGeometry(k, s, d, p, (H, W), (oh, ow), (eh, ew))


def _padded(x, geo: PoolGeometry, fill):
    """``x`` with ``fill`` around it (padding + ceil-mode overhang), in ``x``'s memory order."""
    (ph, pw), (eh, ew) = geo.padding, geo.extra
    if not (ph or pw or eh or ew):
        return x
    xp = get_array_module(x)
    N, C, H, W = x.shape
    shape = (N, C, H + 2 * ph + eh, W + 2 * pw + ew)
    if x.strides[1] > x.strides[0]:
        out = xp.full((C, N) + shape[2:], fill, dtype=x.dtype).transpose(1, 0, 2, 3)
    else:
        out = xp.full(shape, fill, dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


def _offsets(geo: PoolGeometry):
    """Yield ``(index, (row_slice, col_slice))`` of every kernel offset in row-major order."""
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    OH, OW = geo.out_size
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (OH - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (OW - 1) + 1, sw)
            yield i * kw + j, (slice(None), slice(None), rows, cols)


def _empty_like_layout(x, shape, dtype=None, zero=False):
    xp = get_array_module(x)
    dtype = x.dtype if dtype is None else dtype
    make = xp.zeros if zero else xp.empty
    if x.strides[1] > x.strides[0]:
        return make((shape[1], shape[0]) + tuple(shape[2:]), dtype=dtype).transpose(1, 0, 2, 3)
    return make(shape, dtype=dtype)


# ------------------------------------------------------------------------- max
class MaxPoolCache(NamedTuple):
    xpad: object
    y: object
    geo: PoolGeometry


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over each window; padding counts as ``-inf``.

    Args:
        x: ``(N, C, H, W)``.
    Returns:
        ``(y, cache)``; ``y (N, C, OH, OW)`` in ``x``'s memory order.
    """
    geo = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    xp = get_array_module(x)
    xpad = _padded(x, geo, -np.inf)
    slices = [sl for _, sl in _offsets(geo)]
    if len(slices) == 1:
        y = _empty_like_layout(x, x.shape[:2] + geo.out_size)
        y[...] = xpad[slices[0]]
    else:
        y = xp.maximum(xpad[slices[0]], xpad[slices[1]])
        for sl in slices[2:]:
            xp.maximum(y, xpad[sl], out=y)
    return y, MaxPoolCache(xpad, y, geo)


def max_pool2d_backward(dy, cache: MaxPoolCache):
    """Route each ``dy`` to the first maximum of its window (row-major order, like PyTorch).

    The argmax is recovered offset by offset, so no index array is kept from
    the forward: offset ``o`` takes the gradient still unclaimed wherever its
    value equals the window maximum, and clears it for the later offsets.
    """
    xpad, y, geo = cache
    xp = get_array_module(dy)
    if tuple(dy.shape) != tuple(y.shape):
        raise ValueError(f"max_pool2d_backward: dy has shape {tuple(dy.shape)}, expected {tuple(y.shape)}")
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    (ph, pw), (eh, ew) = geo.padding, geo.extra
    H, W = geo.in_size
    OH, OW = geo.out_size
    # Windows that do not overlap write every covered position exactly once: no zero-fill, no adds.
    disjoint = (sh, sw) == (kh, kw) and (dh, dw) == (1, 1)
    dxpad = _empty_like_layout(dy, xpad.shape, dtype=dy.dtype, zero=not disjoint)
    if disjoint:
        dxpad[:, :, OH * kh:] = 0
        dxpad[:, :, :, OW * kw:] = 0
    remaining = dy
    last = kh * kw - 1
    for o, sl in _offsets(geo):
        if o == last:  # whatever is still unclaimed belongs to the last offset
            if disjoint:
                dxpad[sl] = remaining
            else:
                dxpad[sl] += remaining
            break
        taken = remaining * (xpad[sl] == y)
        if disjoint:
            dxpad[sl] = taken
        else:
            dxpad[sl] += taken
        # Subtracting what was taken is exact (g - g = 0, g - 0 = g) and, unlike a
        # masked copyto/where, runs at full vector speed.
        remaining = remaining - taken if remaining is dy else xp.subtract(remaining, taken, out=remaining)
    if ph or pw or eh or ew:
        return dxpad[:, :, ph:ph + H, pw:pw + W]
    return dxpad


# --------------------------------------------------------------------- average
class AvgPoolCache(NamedTuple):
    inv_count: object  # (OH, OW) 1 / divisor of each window
    pad_shape: tuple
    geo: PoolGeometry


def _window_counts(geo: PoolGeometry, axis: int, count_include_pad: bool):
    """Divisor of each output row (axis 0) / column (axis 1), PyTorch's rule."""
    size, k, s, p, d = (geo.in_size[axis], geo.kernel[axis], geo.stride[axis],
                        geo.padding[axis], geo.dilation[axis])
    start = np.arange(geo.out_size[axis]) * s - p
    end = np.minimum(start + d * (k - 1) + 1, size + p)  # windows never count the ceil-mode overhang
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each window.

    The divisor follows PyTorch: with ``count_include_pad`` it counts padded
    zeros but never the part of a ``ceil_mode`` window past the padding;
    without it, only real input elements.

    Returns ``(y (N, C, OH, OW), cache)``.
    """
    geo = pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    xp = get_array_module(x)
    xpad = _padded(x, geo, 0)
    y = None
    for _, sl in _offsets(geo):
        if y is None:
            y = _empty_like_layout(x, x.shape[:2] + geo.out_size)
            y[...] = xpad[sl]
        else:
            y += xpad[sl]
    ch = _window_counts(geo, 0, count_include_pad)
    cw = _window_counts(geo, 1, count_include_pad)
    if ch.min() <= 0 or cw.min() <= 0:
        raise ValueError(f"avg_pool2d: a window of kernel {geo.kernel} covers no input element (input {geo.in_size})")
    inv = xp.asarray((1.0 / np.outer(ch, cw)).astype(x.dtype))
    y *= inv
    return y, AvgPoolCache(inv, xpad.shape, geo)


def avg_pool2d_backward(dy, cache: AvgPoolCache):
    """Spread ``dy / divisor`` evenly over each window (summing where windows overlap)."""
    inv, pad_shape, geo = cache
    expected = pad_shape[:2] + geo.out_size
    if tuple(dy.shape) != tuple(expected):
        raise ValueError(f"avg_pool2d_backward: dy has shape {tuple(dy.shape)}, expected {tuple(expected)}")
    g = dy * inv
    dxpad = _empty_like_layout(dy, pad_shape, dtype=g.dtype, zero=True)
    for _, sl in _offsets(geo):
        dxpad[sl] += g
    (ph, pw), H, W = geo.padding, geo.in_size[0], geo.in_size[1]
    return dxpad[:, :, ph:ph + H, pw:pw + W]


# ------------------------------------------------------------ adaptive average
def adaptive_pool_bins(in_size: int, out_size: int):
    """PyTorch's adaptive bins: ``start = floor(i * in / out)``, ``end = ceil((i + 1) * in / out)``."""
    i = np.arange(out_size)
    start = (i * in_size) // out_size
    end = -((-(i + 1) * in_size) // out_size)
    return start, end


def _bin_matrix(in_size: int, out_size: int, dtype):
    """``(out, in)`` averaging matrix: row ``i`` is ``1 / len`` over bin ``i`` (bins may overlap)."""
    start, end = adaptive_pool_bins(in_size, out_size)
    idx = np.arange(in_size)
    inside = (idx >= start[:, None]) & (idx < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class AdaptiveAvgPoolCache(NamedTuple):
    x_shape: tuple
    ph: object  # (OH, H) or None when pooling is uniform / global
    pw: object
    dtype: object


def adaptive_avg_pool2d_forward(x, output_size):
    """Average pooling to a fixed ``output_size`` ``(OH, OW)`` whatever the input size.

    ``output_size=1`` (or ``(1, 1)``) is global average pooling. When ``H`` is
    a multiple of ``OH`` (and ``W`` of ``OW``) the bins are uniform and it is a
    reshape-and-mean; otherwise it is ``P_h @ x @ P_w.T`` with the (possibly
    overlapping) bin-averaging matrices. An entry ``None`` keeps that input size.
    """
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected input (N, C, H, W), got shape {getattr(x, 'shape', None)}")
    N, C, H, W = x.shape
    if output_size is None or isinstance(output_size, (int, np.integer)):
        output_size = (output_size, output_size)
    oh, ow = (H if output_size[0] is None else output_size[0]), (W if output_size[1] is None else output_size[1])
    oh, ow = pair((oh, ow), "output_size", "adaptive_avg_pool2d")
    xp = get_array_module(x)
    if oh == 1 and ow == 1:
        return x.mean(axis=(2, 3), keepdims=True), AdaptiveAvgPoolCache(x.shape, None, None, x.dtype)
    if H % oh == 0 and W % ow == 0:
        y = x.reshape(N, C, oh, H // oh, ow, W // ow).mean(axis=(3, 5))
        return y, AdaptiveAvgPoolCache(x.shape, None, None, x.dtype)
    ph = xp.asarray(_bin_matrix(H, oh, x.dtype))
    pw = xp.asarray(_bin_matrix(W, ow, x.dtype))
    y = ph @ x @ pw.T
    return y, AdaptiveAvgPoolCache(x.shape, ph, pw, x.dtype)


def adaptive_avg_pool2d_backward(dy, cache: AdaptiveAvgPoolCache):
    """``dx = P_h.T @ dy @ P_w`` (each input pixel receives ``dy / bin size`` from every bin holding it)."""
    x_shape, ph, pw, dtype = cache
    N, C, H, W = x_shape
    xp = get_array_module(dy)
    if dy.ndim != 4 or tuple(dy.shape[:2]) != (N, C):
        raise ValueError(f"adaptive_avg_pool2d_backward: dy has shape {tuple(dy.shape)}, expected ({N}, {C}, OH, OW)")
    oh, ow = dy.shape[2:]
    if ph is not None:
        return ph.T @ dy @ pw
    scale = dy.dtype.type(1.0 / ((H // oh) * (W // ow)))
    g = (dy * scale)[:, :, :, None, :, None]
    return xp.broadcast_to(g, (N, C, oh, H // oh, ow, W // ow)).reshape(N, C, H, W)
