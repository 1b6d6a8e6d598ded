"""Resizing kernels: nearest / bilinear upsampling and constant spatial padding.

Both interpolation modes are separable: the output is built one spatial axis
at a time by gathering source rows (``take``) and, for bilinear, blending the
two neighbours with per-row weights. The backward pass is the transpose of
that gather: because the source indices never decrease along an axis, the
gradient of each source row is a segment sum (``add.reduceat``) -- no
``add.at`` scatter, no Python loop over pixels.

Source coordinates follow PyTorch's ``F.interpolate`` exactly (including the
``scale_factor`` vs ``size`` subtlety: with a ``scale_factor`` the coordinate
map uses ``1 / scale_factor``, not ``in / out``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..backend import get_array_module

__all__ = ["interpolation_size", "upsample_forward", "upsample_backward", "pad_sides", "pad2d", "pad2d_backward"]

MODES = ("nearest", "bilinear")


def _two(value, name: str, where: str, kind):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{where}: {name} must be a number or a pair, got {value!r}")
        a, b = value
    else:
        a = b = value
    try:
        return kind(a), kind(b)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {name} must be a number or a pair of numbers, got {value!r}") from None


def interpolation_size(in_size, size=None, scale_factor=None, where: str = "upsample"):
    """Output ``(OH, OW)`` and the coordinate scales ``(in/out)`` PyTorch uses.

    Exactly one of ``size`` (int or pair) and ``scale_factor`` (number or pair)
    must be given. With ``scale_factor`` the output is ``floor(in * factor)``
    and the scale is ``1 / factor``.
    """
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{where}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    H, W = in_size
    if size is not None:
        oh, ow = _two(size, "size", where, int)
        scales = (H / oh if oh > 0 else 0.0, W / ow if ow > 0 else 0.0)
    else:
        fh, fw = _two(scale_factor, "scale_factor", where, float)
        if fh <= 0 or fw <= 0:
            raise ValueError(f"{where}: scale_factor must be > 0, got {scale_factor!r}")
        oh, ow = int(math.floor(H * fh)), int(math.floor(W * fw))
        scales = (1.0 / fh, 1.0 / fw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{where}: output size ({oh}, {ow}) from input {(H, W)} must be positive")
    return (oh, ow), scales


def _nearest_index(in_size: int, out_size: int, scale: float):
    # PyTorch computes floor(dst * scale) in float32 for float inputs; matching it
    # keeps the chosen source row identical where dst * scale lands on an integer.
    src = np.floor(np.arange(out_size, dtype=np.float32) * np.float32(scale)).astype(np.int64)
    return np.minimum(src, in_size - 1)


def _linear_weights(in_size: int, out_size: int, scale: float, align_corners: bool):
    """Indices ``i0, i1`` and weights ``w0, w1`` of 1-D linear interpolation (PyTorch's rule)."""
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * step
    else:
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)  # clamped at 0 like PyTorch
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def _segment_sum(g, idx, size: int, axis: int):
    """Transpose of ``take(x, idx, axis)`` for non-decreasing ``idx``: sum ``g`` over equal indices."""
    xp = get_array_module(g)
    idx = np.asarray(idx)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    sums = xp.add.reduceat(g, xp.asarray(starts), axis=axis)
    shape = list(g.shape)
    shape[axis] = size
    out = xp.zeros(shape, dtype=g.dtype)
    index = [slice(None)] * g.ndim
    index[axis] = xp.asarray(idx[starts])
    out[tuple(index)] = sums
    return out


class UpsampleCache(NamedTuple):
    x_shape: tuple
    mode: str
    plans: tuple  # per spatial axis: (axis, in_size, i0, i1, w0, w1) (nearest: i1 = w0 = w1 = None)


def _axis_plan(mode, axis, in_size, out_size, scale, align_corners, dtype, xp):
    if mode == "nearest":
        return (axis, in_size, xp.asarray(_nearest_index(in_size, out_size, scale)), None, None, None)
    i0, i1, w0, w1 = _linear_weights(in_size, out_size, scale, align_corners)
    shape = (-1, 1) if axis == 2 else (-1,)
    return (axis, in_size, xp.asarray(i0), xp.asarray(i1),
            xp.asarray(w0.astype(dtype).reshape(shape)), xp.asarray(w1.astype(dtype).reshape(shape)))


def upsample_forward(x, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """Resize ``x (N, C, H, W)`` to ``size`` or by ``scale_factor`` (PyTorch's ``F.interpolate``).

    ``mode="nearest"`` copies ``x[floor(dst * scale)]``; ``mode="bilinear"``
    blends the two nearest rows then columns. ``align_corners`` (bilinear only,
    default False) maps corner pixel *centres* onto each other; False maps the
    pixel *edges* (half-pixel centres), PyTorch's default.

    Returns ``(y (N, C, OH, OW), cache)``.
    """
    where = f"upsample(mode={mode!r})"
    if mode not in MODES:
        raise ValueError(f"upsample: mode must be one of {MODES}, got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{where}: align_corners only applies to bilinear mode, got align_corners={align_corners!r}")
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected input (N, C, H, W), got shape {getattr(x, 'shape', None)}")
    xp = get_array_module(x)
    (oh, ow), (sh, sw) = interpolation_size(x.shape[2:], size, scale_factor, where)
    plans = (_axis_plan(mode, 2, x.shape[2], oh, sh, bool(align_corners), x.dtype, xp),
             _axis_plan(mode, 3, x.shape[3], ow, sw, bool(align_corners), x.dtype, xp))
    y = x
    for axis, _, i0, i1, w0, w1 in plans:
        if i1 is None:
            y = xp.take(y, i0, axis=axis)
        else:
            y = xp.take(y, i0, axis=axis) * w0 + xp.take(y, i1, axis=axis) * w1
    return y, UpsampleCache(x.shape, mode, plans)


def upsample_backward(dy, cache: UpsampleCache):
    """Transpose of ``upsample_forward``: each source pixel sums its weighted output gradients."""
    x_shape, mode, plans = cache
    g = dy
    for axis, in_size, i0, i1, w0, w1 in reversed(plans):
        if i1 is None:
            g = _segment_sum(g, i0, in_size, axis)
        else:
            g = _segment_sum(g * w0, i0, in_size, axis) + _segment_sum(g * w1, i1, in_size, axis)
    if tuple(g.shape) != tuple(x_shape):  # pragma: no cover - guarded by the shapes above
        raise ValueError(f"upsample_backward: gradient shape {g.shape} != input shape {x_shape}")
    return g


def pad_sides(padding, where: str = "pad2d"):
    """Padding -> ``(left, right, top, bottom)``: an int pads all four sides; a 4-tuple is
    ``(left, right, top, bottom)`` as in PyTorch's ``ZeroPad2d``."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        pads = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) == 4 and all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding):
        pads = tuple(int(p) for p in padding)
    else:
        raise TypeError(f"{where}: padding must be an int or (left, right, top, bottom), got {padding!r}")
    if min(pads) < 0:
        raise ValueError(f"{where}: padding must be >= 0, got {padding!r}")
    return pads


def pad2d(x, padding, value: float = 0.0):
    """Pad the last two axes of ``x (N, C, H, W)`` with ``value``.

    ``padding``: int, or ``(left, right, top, bottom)`` like PyTorch's ``ZeroPad2d``.
    Returns ``(N, C, H + top + bottom, W + left + right)``.
    """
    left, right, top, bottom = pad_sides(padding, "pad2d")
    if getattr(x, "ndim", 0) < 2:
        raise ValueError(f"pad2d: expected at least 2 spatial axes (..., H, W), got shape {getattr(x, 'shape', None)}")
    xp = get_array_module(x)
    H, W = x.shape[-2:]
    out = xp.full(x.shape[:-2] + (H + top + bottom, W + left + right), value, dtype=x.dtype)
    out[..., top:top + H, left:left + W] = x
    return out


def pad2d_backward(dy, padding):
    """Gradient of ``pad2d``: the interior of ``dy``."""
    left, right, top, bottom = pad_sides(padding, "pad2d_backward")
    H, W = dy.shape[-2] - top - bottom, dy.shape[-1] - left - right
    return dy[..., top:top + H, left:left + W]
