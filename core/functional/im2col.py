"""Window geometry and the column matrix: output sizes, padding, ``im2col``/``col2im`` and ``unfold``/``fold``.

The book (ch. 7.4) lowers a convolution to one matrix product by unrolling
every receptive field into a row of a column matrix (``im2col``); its adjoint
``col2im`` sums a column matrix back onto the image, which is what the
gradient with respect to the input needs. This module holds that lowering and
everything it rests on: validating kernel size / stride / padding / dilation,
the output-size formulas (shared with pooling and depthwise convolution), and
the errors that name the offending sizes.

The column matrix is one ``as_strided`` view of the zero-padded input, copied
once, ordered ``(C, kh, kw, N, OH, OW)``; ``im2col`` (the book's layout) and
``unfold``/``fold`` (PyTorch's) are transposes of it. The convolution kernels
in ``core.functional.conv`` build their own blocked variant of the same matrix.
Shapes follow PyTorch: input ``(N, C, H, W)``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module

__all__ = [
    "ConvGeometry", "pair", "resolve_padding", "conv_output_size", "conv_geometry",
    "conv_transpose_output_size", "unfold", "fold", "im2col", "col2im",
]


# --------------------------------------------------------------------------- sizes
def pair(value, name: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """``int`` or 2-sequence -> ``(a, b)`` of ints ``>= minimum``; errors name ``where`` and ``name``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return out


def resolve_padding(padding, kernel_size, stride=1, dilation=1, where: str = "conv2d") -> tuple[int, int, int, int]:
    """Padding -> ``(top, bottom, left, right)``.

    Accepts an int, a pair ``(ph, pw)`` (both sides), a 4-tuple
    ``(top, bottom, left, right)``, ``"valid"`` (no padding) or ``"same"``
    (output size = input size; stride must be 1, as in PyTorch). For an even
    effective kernel ``"same"`` pads one more row/column at the bottom/right,
    which is PyTorch's choice.
    """
    kh, kw = pair(kernel_size, "kernel_size", where)
    dh, dw = pair(dilation, "dilation", where)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if pair(stride, "stride", where) != (1, 1):
                raise ValueError(f"{where}: padding='same' needs stride 1, got stride={stride!r}")
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"{where}: padding must be an int, a pair, a 4-tuple, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding):
            raise TypeError(f"{where}: padding must hold ints, got {padding!r}")
        pads = tuple(int(p) for p in padding)
        if min(pads) < 0:
            raise ValueError(f"{where}: padding must be >= 0, got {padding!r}")
        return pads
    ph, pw = pair(padding, "padding", where, minimum=0)
    return (ph, ph, pw, pw)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding=0, dilation: int = 1, *,
                     ceil_mode: bool = False, exact: bool = False, where: str = "conv_output_size") -> int:
    """The book's ``OH = (H + 2P - FH) / S + 1``, generalised.

    ``out = floor((size + p_before + p_after - dilation * (kernel - 1) - 1) / stride) + 1``
    (``ceil`` with ``ceil_mode``). ``padding`` is an int (both sides) or a pair
    ``(before, after)``.

    Raises ``ValueError`` naming ``where`` and every size when the (dilated)
    kernel is larger than the padded input, or, with ``exact=True``, when the
    division leaves a remainder -- the book's formula assumes every input row is
    used; PyTorch (and ``exact=False``) silently drops the rows that do not fill
    a whole window.
    """
    before, after = (padding, padding) if np.isscalar(padding) else padding
    padded = size + before + after
    span = dilation * (kernel_size - 1) + 1
    if span > padded:
        raise ValueError(
            f"{where}: kernel {kernel_size}"
            f"{f' (dilation {dilation}: spans {span})' if dilation != 1 else ''} is larger than the padded "
            f"input {size} + {before} + {after} = {padded}"
        )
    q, r = divmod(padded - span, stride)
    if exact and r:
        raise ValueError(
            f"{where}: (input {size} + padding {before}+{after} - kernel span {span}) = {padded - span} is not "
            f"divisible by stride {stride}: output size {(padded - span) / stride + 1:g} is not an integer"
        )
    return q + 1 + (1 if ceil_mode and r else 0)


class ConvGeometry(NamedTuple):
    """Everything the kernels need about one 2-D window layout (all ints)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    in_size: tuple[int, int]
    out_size: tuple[int, int]


def conv_geometry(in_size, kernel_size, stride=1, padding=0, dilation=1, where: str = "conv2d") -> ConvGeometry:
    """Validate the hyper-parameters for an input ``(H, W)`` and compute the output ``(OH, OW)``."""
    k = pair(kernel_size, "kernel_size", where)
    s = pair(stride, "stride", where)
    d = pair(dilation, "dilation", where)
    p = resolve_padding(padding, k, s, d, where)
    H, W = in_size
    oh = conv_output_size(H, k[0], s[0], (p[0], p[1]), d[0], where=f"{where} (height)")
    ow = conv_output_size(W, k[1], s[1], (p[2], p[3]), d[1], where=f"{where} (width)")
    return ConvGeometry(k, s, d, p, (int(H), int(W)), (oh, ow))


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """``(size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`` (PyTorch)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


# ------------------------------------------------------------------ column matrix
def _pad_zero(x, pads):
    """Zero-pad the two spatial axes, keeping ``x``'s memory order (N- or C-major)."""
    pt, pb, pl, pr = pads
    if not (pt or pb or pl or pr):
        return x
    xp = get_array_module(x)
    N, C, H, W = x.shape
    if x.strides[1] > x.strides[0]:  # channel-major memory: keep it that way
        out = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=x.dtype).transpose(1, 0, 2, 3)
    else:
        out = xp.zeros((N, C, H + pt + pb, W + pl + pr), dtype=x.dtype)
    out[:, :, pt:pt + H, pl:pl + W] = x
    return out


def _columns(x, geo: ConvGeometry):
    """Column matrix ``(C, kh, kw, N, OH, OW)`` (C-contiguous) of ``x (N, C, H, W)``.

    ``col[c, i, j, n, oh, ow] = xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]``: one
    ``as_strided`` view of the padded input and a single copy.
    """
    xp = get_array_module(x)
    xpad = _pad_zero(x, geo.padding)
    N, C = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    OH, OW = geo.out_size
    sN, sC, sH, sW = xpad.strides
    view = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, kh, kw, N, OH, OW), strides=(sC, dh * sH, dw * sW, sN, sh * sH, sw * sW))
    return xp.ascontiguousarray(view)


def _col2im_add(dst, dcol, geo: ConvGeometry):
    """Add ``dcol (C, kh, kw, n, OH, OW)`` onto the padded image ``dst (C, n, Hp, Wp)`` (adjoint of the view).

    Loops over the ``kh * kw`` kernel offsets only; each step adds a whole
    ``(C, n, OH, OW)`` slab into a strided slice.
    """
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    OH, OW = geo.out_size
    h_end, w_end = sh * (OH - 1) + 1, sw * (OW - 1) + 1
    for i in range(kh):
        for j in range(kw):
            dst[:, :, i * dh:i * dh + h_end:sh, j * dw:j * dw + w_end:sw] += dcol[:, i, j]


def _col2im(dcol, geo: ConvGeometry, N: int, C: int):
    """Sum ``dcol (C, kh, kw, N, OH, OW)`` back onto ``(N, C, H, W)`` (a channel-major view)."""
    xp = get_array_module(dcol)
    pt, pb, pl, pr = geo.padding
    H, W = geo.in_size
    dx = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=dcol.dtype)
    _col2im_add(dx, dcol, geo)
    return dx[:, :, pt:pt + H, pl:pl + W].transpose(1, 0, 2, 3)


def _check_input(x, where: str, channels: int | None = None):
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected input (N, C, H, W), got shape {getattr(x, 'shape', type(x).__name__)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{where}: expected {channels} input channels, got input of shape {x.shape}")


def unfold(x, kernel_size, stride=1, padding=0, dilation=1):
    """Receptive fields as columns, PyTorch's ``F.unfold`` layout.

    Args:
        x: ``(N, C, H, W)``.
    Returns:
        ``(N, C * kh * kw, OH * OW)``; entry ``[n, (c*kh + i)*kw + j, oh*OW + ow]``
        is ``xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]``.
    """
    _check_input(x, "unfold")
    geo = conv_geometry(x.shape[2:], kernel_size, stride, padding, dilation, "unfold")
    N, C = x.shape[:2]
    col = _columns(x, geo)
    kh, kw = geo.kernel
    return col.reshape(C * kh * kw, N, -1).transpose(1, 0, 2)


def fold(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """Adjoint of ``unfold`` (PyTorch's ``F.fold``): overlapping entries are summed.

    Args:
        cols: ``(N, C * kh * kw, L)`` with ``L = OH * OW`` for ``output_size``.
        output_size: ``(H, W)`` of the image to rebuild.
    Returns:
        ``(N, C, H, W)``.
    """
    if getattr(cols, "ndim", None) != 3:
        raise ValueError(f"fold: expected cols (N, C*kh*kw, L), got shape {getattr(cols, 'shape', None)}")
    H, W = pair(output_size, "output_size", "fold")
    geo = conv_geometry((H, W), kernel_size, stride, padding, dilation, "fold")
    kh, kw = geo.kernel
    N, CKK, L = cols.shape
    OH, OW = geo.out_size
    if CKK % (kh * kw) or L != OH * OW:
        raise ValueError(
            f"fold: cols {cols.shape} do not match kernel {geo.kernel} and output_size {(H, W)}: expected "
            f"(N, C*{kh * kw}, {OH}*{OW}={OH * OW})"
        )
    C = CKK // (kh * kw)
    dcol = cols.transpose(1, 0, 2).reshape(C, kh, kw, N, OH, OW)
    return _col2im(dcol, geo, N, C)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """The book's ``im2col``: ``(N, C, H, W)`` -> ``(N * OH * OW, C * kh * kw)``.

    Row ``(n*OH + oh)*OW + ow`` holds the receptive field of output pixel
    ``(oh, ow)`` of sample ``n``, flattened in ``(c, i, j)`` order, so that
    ``im2col(x) @ W.reshape(O, -1).T`` is the convolution in ``(N, OH, OW, O)``
    order. The layers use the faster channel-major ``unfold`` layout internally.
    """
    _check_input(x, "im2col")
    geo = conv_geometry(x.shape[2:], kernel_size, stride, padding, dilation, "im2col")
    N, C = x.shape[:2]
    kh, kw = geo.kernel
    col = _columns(x, geo)
    return col.transpose(3, 4, 5, 0, 1, 2).reshape(N * geo.out_size[0] * geo.out_size[1], C * kh * kw)


def col2im(col, input_shape, kernel_size, stride=1, padding=0, dilation=1):
    """The book's ``col2im``: adjoint of ``im2col``, ``(N*OH*OW, C*kh*kw)`` -> ``input_shape``.

    Entries of overlapping windows are summed (this is what the gradient with
    respect to the input needs), so ``col2im(im2col(x))`` equals ``x`` times the
    number of windows covering each pixel, not ``x``.
    """
    if len(input_shape) != 4:
        raise ValueError(f"col2im: input_shape must be (N, C, H, W), got {input_shape!r}")
    N, C, H, W = (int(s) for s in input_shape)
    geo = conv_geometry((H, W), kernel_size, stride, padding, dilation, "col2im")
    kh, kw = geo.kernel
    OH, OW = geo.out_size
    if tuple(col.shape) != (N * OH * OW, C * kh * kw):
        raise ValueError(
            f"col2im: col has shape {tuple(col.shape)}, expected ({N}*{OH}*{OW}, {C}*{kh}*{kw}) = "
            f"{(N * OH * OW, C * kh * kw)} for input_shape {tuple(input_shape)}"
        )
    dcol = col.reshape(N, OH, OW, C, kh, kw).transpose(3, 4, 5, 0, 1, 2)
    return _col2im(dcol, geo, N, C)
