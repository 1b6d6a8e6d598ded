"""Depthwise 2-D convolution (``groups == channels``, MobileNet) computed directly, forward and backward.

Lowering a depthwise convolution to im2col + matmul (what ``conv2d_forward``
does for any ``groups``) copies the input ``kh * kw`` times into a column
matrix and then runs ``C`` tiny ``(1, kh*kw) @ (kh*kw, L)`` products: the
copy dominates and the memory for a 5x5 kernel is 25x the activation. Here
each output is instead the sum over taps of a strided view of the padded
input scaled by one weight per channel:

    y[n, c, oh, ow] = sum_{i, j} w[c, 0, i, j] * xpad[n, c, oh*s + i*d, ow*s + j*d]

computed by one ``einsum`` over a zero-copy view ``(n, OH, OW, kh, kw, C)``
of a *channels-last* padded copy of the input. Channels-last matters: every
tap then reads ``OW * C`` contiguous values and NumPy's sum-of-products loop
multiplies and accumulates in one pass with the channels innermost, instead
of looping over rows of ``OW`` values (7 at the end of a MobileNet). The same
view gives the weight gradient (another ``einsum``), and the input gradient is
the full correlation of the padded ``dy`` with the flipped kernel (stride 1)
or a scatter of ``w * dy`` onto each tap's window (stride > 1).

``depthwise_conv2d_forward`` / ``_backward`` take and return ``(N, C, H, W)``
arrays like ``core.functional.conv`` (outputs are views of channel-major
``(C, N, H, W)`` memory, that module's convention); ``depthwise_conv2d_nhwc`` is the forward-only inference
variant on ``(N, H, W, C)`` data with an optional fused clamp.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from .im2col import pair, resolve_padding

__all__ = ["DepthwiseCache", "depthwise_conv2d_forward", "depthwise_conv2d_backward", "depthwise_conv2d_nhwc"]

#: Target bytes of one block of output rows: bias and clamp run on it while it is in cache.
BLOCK_BYTES = 512 * 1024


class DepthwiseCache(NamedTuple):
    """What ``depthwise_conv2d_backward`` needs."""

    xpad: object  # (N, Hp, Wp, C) channels-last padded input
    weight: object  # (C, 1, kh, kw)
    stride: tuple
    padding: tuple  # (top, bottom, left, right)
    dilation: tuple
    in_size: tuple  # (H, W)
    has_bias: bool


def _geometry(shape_nchw, weight, stride, padding, dilation, where):
    """Validate and return ``((kh, kw), stride, dilation, pads, (OH, OW))``."""
    C = shape_nchw[1]
    if getattr(weight, "ndim", None) != 4 or tuple(weight.shape[:2]) != (C, 1):
        raise ValueError(f"{where}: weight must be (C, 1, kh, kw) = ({C}, 1, kh, kw) for input of {C} channels, "
                         f"got {getattr(weight, 'shape', None)}")
    kh, kw = weight.shape[2:]
    s = pair(stride, "stride", where)
    d = pair(dilation, "dilation", where)
    pads = resolve_padding(padding, (kh, kw), s, d, where)
    if min(pads) < 0:
        raise ValueError(f"{where}: padding must be >= 0, got {padding!r}")
    H, W = shape_nchw[2:]
    Hp, Wp = H + pads[0] + pads[1], W + pads[2] + pads[3]
    span_h, span_w = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    if span_h > Hp or span_w > Wp:
        raise ValueError(f"{where}: kernel span ({span_h}, {span_w}) is larger than the padded input ({Hp}, {Wp})")
    return (kh, kw), s, d, pads, ((Hp - span_h) // s[0] + 1, (Wp - span_w) // s[1] + 1)


def _pad_nhwc(x_nhwc, pads, dtype):
    """Zero-padded channels-last copy ``(N, Hp, Wp, C)`` (``x`` itself when no padding or cast is needed)."""
    xp = get_array_module(x_nhwc)
    pt, pb, pl, pr = pads
    if not any(pads) and x_nhwc.dtype == dtype and x_nhwc.flags["C_CONTIGUOUS"]:
        return x_nhwc
    N, H, W, C = x_nhwc.shape
    out = xp.zeros((N, H + pt + pb, W + pl + pr, C), dtype=dtype)
    out[:, pt:pt + H, pl:pl + W] = x_nhwc
    return out


def _taps(xpad, out_size, kernel, stride, dilation):
    """Zero-copy view ``(N, OH, OW, kh, kw, C)``: ``[n, oh, ow, i, j] = xpad[n, oh*s + i*d, ow*s + j*d]``."""
    xp = get_array_module(xpad)
    sn, sy, sx, sc = xpad.strides
    (sh, sw), (dh, dw) = stride, dilation
    return xp.lib.stride_tricks.as_strided(
        xpad, shape=(xpad.shape[0],) + tuple(out_size) + tuple(kernel) + (xpad.shape[3],),
        strides=(sn, sh * sy, sw * sx, dh * sy, dw * sx, sc), writeable=False)


def _kernel_last(weight, dtype):
    """``(C, 1, kh, kw)`` -> contiguous ``(kh, kw, C)``."""
    xp = get_array_module(weight)
    C, _, kh, kw = weight.shape
    return xp.ascontiguousarray(weight.astype(dtype, copy=False).reshape(C, kh * kw).T).reshape(kh, kw, C)


def _correlate(xpad, w_kkc, out_size, stride, dilation, bias=None, clip=None):
    """``sum_{i,j} w[i, j, c] * taps[n, oh, ow, i, j, c]`` (+ bias, clamped): ``(N, OH, OW, C)``."""
    xp = get_array_module(xpad)
    taps = _taps(xpad, out_size, w_kkc.shape[:2], stride, dilation)
    N, C = xpad.shape[0], xpad.shape[3]
    OH, OW = out_size
    out = xp.empty((N, OH, OW, C), dtype=xpad.dtype)
    rows = max(1, min(OH, BLOCK_BYTES // max(1, OW * C * xpad.itemsize)))
    for n in range(N):  # blocks of output rows, so that bias/clip find them in cache
        for r0 in range(0, OH, rows):
            acc = out[n, r0:r0 + rows]
            xp.einsum("hwijc,ijc->hwc", taps[n, r0:r0 + rows], w_kkc, out=acc)
            if bias is not None:
                acc += bias
            if clip is not None:
                xp.clip(acc, clip[0], clip[1], out=acc)
    return out


def _channel_major(a_nhwc):
    """``(N, H, W, C)`` -> ``(N, C, H, W)`` view of channel-major ``(C, N, H, W)`` memory (one copy).

    That is the memory order ``core.functional.conv`` produces and consumes
    without copies, so the BatchNorm / ReLU6 / 1x1 convolutions around a
    depthwise layer see operands of one layout (elementwise NumPy on mixed
    layouts runs several times slower).
    """
    xp = get_array_module(a_nhwc)
    return xp.ascontiguousarray(a_nhwc.transpose(3, 0, 1, 2)).transpose(1, 0, 2, 3)


def depthwise_conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution ``(N, C, H, W) -> (N, C, OH, OW)`` with ``weight (C, 1, kh, kw)``.

    Args:
        x: input in any memory order.
        weight: one ``kh x kw`` filter per channel (PyTorch's ``groups=C`` layout).
        bias: ``(C,)`` or None.
        stride, dilation: int or pair. padding: int, pair, ``(top, bottom, left, right)``,
            ``"same"`` or ``"valid"`` (as ``conv2d_forward``).
    Returns:
        ``(y, cache)``: ``y (N, C, OH, OW)``, a view of channel-major memory, with
        ``OH = floor((H + top + bottom - dilation*(kh-1) - 1) / stride) + 1``.
    """
    where = "depthwise_conv2d"
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected input (N, C, H, W), got shape {getattr(x, 'shape', None)}")
    kernel, s, d, pads, out_size = _geometry(x.shape, weight, stride, padding, dilation, where)
    dtype = np.result_type(x.dtype, weight.dtype)
    xpad = _pad_nhwc(x.transpose(0, 2, 3, 1), pads, dtype)
    b = None if bias is None else bias.astype(dtype, copy=False)
    y = _correlate(xpad, _kernel_last(weight, dtype), out_size, s, d, bias=b)
    return _channel_major(y), DepthwiseCache(xpad, weight, s, pads, d, tuple(x.shape[2:]), bias is not None)


def depthwise_conv2d_backward(dy, cache: DepthwiseCache, input_grad: bool = True, weight_grad: bool = True,
                              bias_grad: bool = True):
    """Gradients of ``depthwise_conv2d_forward``.

    ``dw[c, 0, i, j] = sum_{n, oh, ow} dy[n, c, oh, ow] * xpad[n, c, oh*s + i*d, ow*s + j*d]``,
    ``db[c] = sum dy[:, c]``; ``dx`` is, for stride 1, the full correlation of
    ``dy`` (zero-padded by the kernel span minus the forward padding) with the
    spatially flipped kernel, and otherwise the sum over taps of
    ``w[c, 0, i, j] * dy`` scattered onto each tap's strided window, with the
    forward padding cropped off.

    Returns ``(dx, dw, db)``: ``dx (N, C, H, W)`` (a view of channel-major
    memory), ``dw`` shaped like the weight; entries not requested (or no
    bias) are None.
    """
    xpad, weight, s, pads, d, (H, W), has_bias = cache
    xp = get_array_module(dy)
    N, C = xpad.shape[0], xpad.shape[3]
    kh, kw = weight.shape[2:]
    OH = (xpad.shape[1] - d[0] * (kh - 1) - 1) // s[0] + 1
    OW = (xpad.shape[2] - d[1] * (kw - 1) - 1) // s[1] + 1
    if tuple(dy.shape) != (N, C, OH, OW):
        raise ValueError(f"depthwise_conv2d_backward: dy has shape {tuple(dy.shape)}, expected {(N, C, OH, OW)}")
    dtype = xpad.dtype
    g = xp.ascontiguousarray(dy.transpose(0, 2, 3, 1), dtype=dtype)  # channels-last, like xpad
    db = g.sum(axis=(0, 1, 2)) if has_bias and bias_grad else None
    dw = None
    if weight_grad:
        dw = xp.einsum("nhwijc,nhwc->cij", _taps(xpad, (OH, OW), (kh, kw), s, d), g).reshape(weight.shape)
        dw = dw.astype(weight.dtype, copy=False)
    if not input_grad:
        return None, dw, db
    pt, pb, pl, pr = pads
    w = _kernel_last(weight, dtype)
    if s == (1, 1):
        # dx[h] = sum_i w[kh-1-i] * dypad[h + i*d], dy placed at offset span - 1 - pt.
        span_h, span_w = d[0] * (kh - 1), d[1] * (kw - 1)
        top, left = span_h - pt, span_w - pl
        gpad = xp.zeros((N, H + span_h, W + span_w, C), dtype=dtype)
        src = g[:, max(0, -top):OH - max(0, top + OH - (H + span_h)), max(0, -left):OW - max(0, left + OW - (W + span_w))]
        gpad[:, max(0, top):max(0, top) + src.shape[1], max(0, left):max(0, left) + src.shape[2]] = src
        dx = _correlate(gpad, xp.ascontiguousarray(w[::-1, ::-1]), (H, W), (1, 1), d)
    else:
        dxpad = xp.zeros(xpad.shape, dtype=dtype)
        tmp = xp.empty_like(g)
        for i in range(kh):
            for j in range(kw):
                win = dxpad[:, i * d[0]:i * d[0] + s[0] * (OH - 1) + 1:s[0], j * d[1]:j * d[1] + s[1] * (OW - 1) + 1:s[1]]
                xp.multiply(g, w[i, j], out=tmp)
                win += tmp
        dx = dxpad[:, pt:pt + H, pl:pl + W]
    return _channel_major(dx), dw, db


def depthwise_conv2d_nhwc(x, weight, bias=None, stride=1, padding=0, dilation=1, clip=None):
    """Forward-only depthwise convolution on channels-last data, for inference.

    Args:
        x: ``(N, H, W, C)``.
        weight: ``(C, 1, kh, kw)`` (PyTorch's layout, as ``depthwise_conv2d_forward``).
        bias: ``(C,)`` or None. stride, padding, dilation: as ``depthwise_conv2d_forward``.
        clip: optional ``(low, high)`` clamp fused into the output (e.g. ReLU6).
    Returns:
        ``y (N, OH, OW, C)`` (C-contiguous); no cache, there is no backward.
    """
    where = "depthwise_conv2d_nhwc"
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected input (N, H, W, C), got shape {getattr(x, 'shape', None)}")
    N, H, W, C = x.shape
    kernel, s, d, pads, out_size = _geometry((N, C, H, W), weight, stride, padding, dilation, where)
    dtype = np.result_type(x.dtype, weight.dtype)
    b = None if bias is None else bias.astype(dtype, copy=False)
    return _correlate(_pad_nhwc(x, pads, dtype), _kernel_last(weight, dtype), out_size, s, d, bias=b, clip=clip)
