"""Convolution kernels: ``conv2d`` forward and backward as blocked column-matrix products.

The book (ch. 7.4) lowers a convolution to one matrix product by unrolling
every receptive field into a row of a column matrix (``im2col``). The
kernels here keep that idea; what makes them several times faster than the
book's version is the memory order, not the arithmetic:

* **Channel-major activations.** ``W (O, C*kh*kw) @ col (C*kh*kw, N*OH*OW)``
  produces ``(O, N, OH, OW)``, which is returned as the *transposed view*
  ``(N, O, OH, OW)`` -- no copy back to ``N``-major memory. NumPy computes
  correctly on any strides, so ReLU, pooling and the next convolution simply
  keep working in that memory order, and a channel-major ``dy`` is already
  the ``(O, N*OH*OW)`` matrix the backward products need.
* **The column matrix is a strided view** of the zero-padded input, copied
  with one ``copyto``, ordered ``(C, kh, kw, N, OH, OW)`` so that the copy
  runs along output rows. With stride 1 it uses "shifted rows" (see
  ``_column_view``): every ``(c, i, j, n)`` slab is a single contiguous run.
* **Blocks of samples.** The column matrix of a block of samples (about
  ``BLOCK_BYTES``) is built and immediately consumed by BLAS while it is in
  cache; the whole matrix (``kh*kw`` times the input) is never stored. The
  forward keeps only the padded input; the backward rebuilds each block.
* **dx without col2im for stride 1**: the full correlation of ``dy`` with the
  flipped kernel, i.e. one more blocked product. Strided convolutions use the
  book's ``col2im``, looping over the ``kh*kw`` kernel offsets only.

Outputs may therefore be non-C-contiguous; call ``numpy.ascontiguousarray``
when an ``N``-major buffer is required. Shapes follow PyTorch: input
``(N, C, H, W)``, conv weight ``(O, C // groups, kh, kw)``, transposed-conv
weight ``(C, O // groups, kh, kw)``.

The window geometry and the book's ``im2col``/``col2im`` live in
``core.functional.im2col``; the transposed convolution, which reuses these
kernels, in ``core.functional.conv_transpose``. Their public names are
re-exported here.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from .im2col import (  # noqa: F401  (the public ones are re-exported: this module was their home)
    ConvGeometry, _check_input, _col2im_add, col2im, conv_geometry, conv_output_size, conv_transpose_output_size,
    fold, im2col, pair, resolve_padding, unfold,
)

__all__ = [
    "ConvGeometry", "pair", "resolve_padding", "conv_output_size", "conv_geometry",
    "conv_transpose_output_size", "unfold", "fold", "im2col", "col2im", "ConvCache", "ConvTransposeCache",
    "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
]


# ----------------------------------------------------------------------- conv2d
#: Target size of one column-matrix block. The convolution runs over blocks of
#: samples whose column matrix fits in the last-level cache, so the matrix is
#: written and immediately consumed by BLAS from cache instead of DRAM, and is
#: never stored whole (the backward pass rebuilds it from the padded input).
BLOCK_BYTES = 4 << 20

#: Stride-1 convolutions use the "shifted rows" column layout (see ``_column_view``)
#: when its extra columns, ``Wp - OW``, cost at most this fraction of the product;
#: small maps (8x8 padded to 10x10: 25%) use the plain windowed layout instead.
SHIFT_MAX_WASTE = 0.2


def _matmul(a, b, out=None):
    """``a @ b`` (into ``out``); float16 is multiplied in float32 and rounded (NumPy has no float16 BLAS)."""
    xp = get_array_module(a)
    if a.dtype == np.float16:
        r = xp.matmul(a.astype(np.float32), b.astype(np.float32))
        if out is None:
            return r.astype(np.float16)
        out[...] = r
        return out
    return xp.matmul(a, b, out=out)


def _channel_major(a, groups: int):
    """``(N, O, H, W)`` -> ``(groups, O // groups, N * H * W)``; free when ``a`` is already channel-major."""
    xp = get_array_module(a)
    N, O, H, W = a.shape
    return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(groups, O // groups, N * H * W)


class Padded(NamedTuple):
    """A channel-major zero-padded input ``buf (C, N, Hp + 1, Wp)`` and its window geometry.

    ``width`` is the number of column-matrix entries per output row: ``Wp`` for
    stride 1 (the "shifted rows" layout, see ``_column_view``), else ``OW``.
    """

    buf: object
    geo: ConvGeometry
    width: int


def _pad_channel_major(x, geo: ConvGeometry) -> Padded:
    """Copy ``x (N, C, H, W)`` into a zero frame ``(C, N, Hp + 1, Wp)``; negative padding crops.

    The spare zero row keeps the last stride-1 run in bounds: it overhangs the
    plane by ``(kw - 1) * dw`` values. Only the frame is zeroed.
    """
    xp = get_array_module(x)
    pads = geo.padding
    if min(pads) < 0:  # the dx of a conv padded by more than its kernel span crops dy
        H, W = x.shape[2:]
        x = x[:, :, max(-pads[0], 0):H - max(-pads[1], 0), max(-pads[2], 0):W - max(-pads[3], 0)]
        pads = tuple(max(p, 0) for p in pads)
    N, C, H, W = x.shape
    pt, pb, pl, pr = pads
    buf = xp.empty((C, N, H + pt + pb + 1, W + pl + pr), dtype=x.dtype)
    buf[:, :, :pt] = 0
    buf[:, :, pt + H:] = 0
    buf[:, :, pt:pt + H, :pl] = 0
    buf[:, :, pt:pt + H, pl + W:] = 0
    buf[:, :, pt:pt + H, pl:pl + W] = x.transpose(1, 0, 2, 3)
    Wp, OW = buf.shape[3], geo.out_size[1]
    shift = geo.stride == (1, 1) and Wp - OW <= SHIFT_MAX_WASTE * OW
    return Padded(buf, geo, Wp if shift else OW)


def _column_view(p: Padded):
    """Strided view of the whole column matrix: ``(C, kh, kw, N, OH * width)`` or ``(C, kh, kw, N, OH, OW)``.

    Stride 1 ("shifted rows"): output row ``oh`` at kernel offset ``(i, j)``
    reads ``buf[c, n, oh + i*dh, j*dw : j*dw + OW]``, and the next output row
    continues that run if the ``Wp - OW`` columns in between are kept too. So
    each ``(c, i, j, n)`` slab is *one* run of ``OH * Wp`` values starting at
    ``i*dh*Wp + j*dw``: the copy streams long runs instead of ``OW``-element
    pieces, at the price of ``Wp - OW`` extra output columns per row, computed
    and then skipped by a strided view. Otherwise the view is 6-D with the
    stride steps. Blocks of samples are slices of axis 3.
    """
    xp = get_array_module(p.buf)
    C, N, _, Wp = p.buf.shape
    (kh, kw), (sh, sw), (dh, dw) = p.geo.kernel, p.geo.stride, p.geo.dilation
    OH, OW = p.geo.out_size
    sC, sN, sH, sW = p.buf.strides
    if p.width == Wp and (sh, sw) == (1, 1):
        return xp.lib.stride_tricks.as_strided(p.buf, (C, kh, kw, N, OH * Wp), (sC, dh * sH, dw * sW, sN, sW))
    return xp.lib.stride_tricks.as_strided(p.buf, (C, kh, kw, N, OH, OW),
                                           (sC, dh * sH, dw * sW, sN, sh * sH, sw * sW))


def _blocks(N: int, per_sample: int, itemsize: int):
    """``(n0, n1)`` ranges of samples whose column matrix is about ``BLOCK_BYTES``."""
    step = max(1, min(N, BLOCK_BYTES // max(1, per_sample * itemsize)))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


def _scratch(xp, blocks, per_sample: int, dtype):
    """One reusable buffer for the largest block (the first)."""
    return xp.empty(per_sample * (blocks[0][1] - blocks[0][0] if blocks else 0), dtype=dtype)


def _block_columns(xp, view, n0: int, n1: int, scratch, groups: int):
    """Copy the column matrix of samples ``n0:n1`` into ``scratch``: ``(groups, C/g*kh*kw, n*OH*width)``."""
    block = view[:, :, :, n0:n1]
    col = scratch[:block.size].reshape(block.shape)
    xp.copyto(col, block)
    C, kh, kw = block.shape[:3]
    return col.reshape(groups, (C // groups) * kh * kw, -1)


def _conv_blocks(p: Padded, weight, groups: int, bias=None, grad_source=None):
    """``y (O, N, OH, width)`` channel-major ``= W @ col + b``, one cached block of samples at a time.

    With ``grad_source`` (channel-major ``(S, N, OH, OW)``, ``S`` divisible by
    ``groups``) the same column blocks also yield
    ``G = grad_source (S, N*OH*width) @ col.T`` per group, returned as
    ``(y, G (groups, S/groups, C/groups*kh*kw))``: the weight gradient of a
    transposed convolution, or the flipped weight gradient of a convolution
    whose ``dx`` this is (see ``_stride1_backward``).
    """
    xp = get_array_module(p.buf)
    C, N = p.buf.shape[:2]
    O = weight.shape[0]
    kh, kw = p.geo.kernel
    L = p.geo.out_size[0] * p.width
    w3 = weight.reshape(groups, O // groups, -1)
    b = None if bias is None else bias.reshape(groups, O // groups, 1).astype(p.buf.dtype, copy=False)
    y = xp.empty((groups, O // groups, N, L), dtype=p.buf.dtype)
    blocks = _blocks(N, C * kh * kw * L, p.buf.itemsize)
    scratch = _scratch(xp, blocks, C * kh * kw * L, p.buf.dtype)
    view = _column_view(p)
    if grad_source is not None:
        S, _, OH, OW = grad_source.shape
        G = xp.zeros((groups, S // groups, (C // groups) * kh * kw), dtype=p.buf.dtype)
        g_buf = _scratch(xp, blocks, S * L, p.buf.dtype)
    for n0, n1 in blocks:
        col = _block_columns(xp, view, n0, n1, scratch, groups)
        out = y[:, :, n0:n1].reshape(groups, O // groups, (n1 - n0) * L)
        if groups == 1:
            _matmul(w3[0], col[0], out=out[0])
        else:
            _matmul(w3, col, out=out)
        if b is not None:  # while the block is still in cache
            out += b
        if grad_source is not None:
            src = _extended_block(grad_source, n0, n1, p.width, g_buf).reshape(groups, S // groups, -1)
            if groups == 1:
                G[0] += _matmul(src[0], col[0].T)
            else:
                G += _matmul(src, col.transpose(0, 2, 1))
    y = y.reshape(O, N, p.geo.out_size[0], p.width)
    return y if grad_source is None else (y, G)


def _extended_block(a_cm, n0: int, n1: int, width: int, scratch):
    """Samples ``n0:n1`` of channel-major ``a_cm (S, N, OH, OW)`` as ``(S, n, OH, width)``, zero extra columns.

    In that layout position ``(oh, ow)`` matches the column matrix's
    ``oh * width + ow``; the zeros cancel its dummy stride-1 entries.
    """
    S, _, OH, OW = a_cm.shape
    out = scratch[:S * (n1 - n0) * OH * width].reshape(S, n1 - n0, OH, width)
    out[..., :OW] = a_cm[:, n0:n1]
    out[..., OW:] = 0
    return out


def _param_grads(dy_cm, p: Padded, groups: int, weight_shape, weight_grad: bool, bias_grad: bool):
    """``dW = dy (O, N*OH*width) @ col.T`` per group and ``db = sum dy``, over sample blocks.

    ``dy_cm (O, N, OH, OW)`` (channel-major) is copied block by block into a
    cached ``(O, n, OH, width)`` buffer whose extra columns are zero, which
    cancels the dummy entries of the stride-1 column matrix.
    """
    xp = get_array_module(dy_cm)
    C, N = p.buf.shape[:2]
    O, OW = weight_shape[0], dy_cm.shape[3]
    kh, kw = p.geo.kernel
    OH, width = p.geo.out_size[0], p.width
    L = OH * width
    dw = xp.zeros((groups, O // groups, (C // groups) * kh * kw), dtype=dy_cm.dtype) if weight_grad else None
    db = xp.zeros(O, dtype=dy_cm.dtype) if bias_grad else None
    blocks = _blocks(N, C * kh * kw * L, p.buf.itemsize)
    scratch = _scratch(xp, blocks, C * kh * kw * L, p.buf.dtype) if weight_grad else None
    d_buf = _scratch(xp, blocks, O * L, dy_cm.dtype)
    view = _column_view(p)
    for n0, n1 in blocks:
        d = _extended_block(dy_cm, n0, n1, width, d_buf).reshape(groups, O // groups, -1)
        if db is not None:
            db += d.reshape(O, -1).sum(axis=1)
        if dw is not None:
            col = _block_columns(xp, view, n0, n1, scratch, groups)
            if groups == 1:
                dw[0] += _matmul(d[0], col[0].T)
            else:
                dw += _matmul(d, col.transpose(0, 2, 1))
    return (None if dw is None else dw.reshape(weight_shape)), db


def _flipped_transposed(weight, groups: int):
    """``(O, C/g, kh, kw)`` -> ``(C, O/g, kh, kw)`` with both kernel axes reversed, per group."""
    O, Cg, kh, kw = weight.shape
    w = weight.reshape(groups, O // groups, Cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return w.reshape(groups * Cg, O // groups, kh, kw)


def _full_correlation_geometry(geo: ConvGeometry, dy_size) -> ConvGeometry:
    """Stride-1 geometry of ``dx = corr(pad(dy), flipped W)`` for a stride-1 ``geo``.

    ``dy`` is padded to ``H + span`` rows: ``span - top`` above and the rest
    below (which is ``span - bottom`` unless a transposed conv's
    ``output_padding`` left rows that no window reaches); likewise columns.
    Negative amounts crop.
    """
    (kh, kw), (dh, dw) = geo.kernel, geo.dilation
    OH, OW = dy_size
    H, W = geo.in_size
    pt, _, pl, _ = geo.padding
    span_h, span_w = dh * (kh - 1), dw * (kw - 1)
    return ConvGeometry(geo.kernel, (1, 1), geo.dilation, (span_h - pt, H + pt - OH, span_w - pl, W + pl - OW),
                        (OH, OW), (H, W))


def _stride1_backward(dy, p: Padded, weight, groups: int):
    """``(dx, dW)`` of a stride-1 convolution from *one* column matrix, that of padded ``dy``.

    ``dx = flip(W).T-correlation of pad(dy)`` (see ``_input_grad``) is
    ``W' @ col(dy)``; and ``x (C, positions) @ col(dy).T`` is ``dW`` with
    both kernel axes reversed and in/out swapped, since
    ``col(dy)[o, i', j', (h, w)] = dy[o, h - i*d + pt, w - j*d + pl]`` with
    ``i = kh - 1 - i'``. So the backward builds one column matrix instead of
    two (``col(dy)`` for ``dx`` and ``col(x)`` for ``dW``).
    """
    O, Cg, kh, kw = weight.shape
    H, W = p.geo.in_size
    pt, _, pl, _ = p.geo.padding
    x_cm = p.buf[:, :, pt:pt + H, pl:pl + W]
    q = _pad_channel_major(dy, _full_correlation_geometry(p.geo, dy.shape[2:]))
    dx, G = _conv_blocks(q, _flipped_transposed(weight, groups), groups, grad_source=x_cm)
    dw = G.reshape(groups, Cg, O // groups, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return dx[..., :W].transpose(1, 0, 2, 3), dw.reshape(O, Cg, kh, kw), q


def _input_grad(dy, weight, geo: ConvGeometry, groups: int):
    """d(loss)/d(input) ``(N, C, H, W)`` (a channel-major view) from ``dy (N, O, OH, OW)``.

    Stride 1: ``dx`` is the *full* correlation of ``dy`` with the flipped,
    in/out-swapped kernel (``dy`` padded by ``dilation*(k-1) - padding``): one
    more blocked column-matrix product whose result already is ``dx`` --
    cheaper than writing the ``kh*kw`` times larger ``W.T @ dy`` and summing it
    back. Strided: ``col2im(W.T @ dy)``, the book's way, block by block.
    """
    xp = get_array_module(dy)
    kh, kw = geo.kernel
    N, O, OH, OW = dy.shape
    H, W = geo.in_size
    C = weight.shape[1] * groups
    if geo.stride == (1, 1):
        p = _pad_channel_major(dy, _full_correlation_geometry(geo, (OH, OW)))
        dx = _conv_blocks(p, _flipped_transposed(weight, groups), groups)
        return dx[..., :W].transpose(1, 0, 2, 3)
    dy3 = _channel_major(dy, groups).reshape(groups, O // groups, N, OH * OW)
    w3t = weight.reshape(groups, O // groups, -1).transpose(0, 2, 1)
    pt, pb, pl, pr = geo.padding
    dxpad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=dy.dtype)
    for n0, n1 in _blocks(N, C * kh * kw * OH * OW, dy.itemsize):
        dn = dy3[:, :, n0:n1].reshape(groups, O // groups, (n1 - n0) * OH * OW)
        dcol = _matmul(w3t[0], dn[0]) if groups == 1 else _matmul(w3t, dn)
        _col2im_add(dxpad[:, n0:n1], dcol.reshape(C, kh, kw, n1 - n0, OH, OW), geo)
    return dxpad[:, :, pt:pt + H, pl:pl + W].transpose(1, 0, 2, 3)


class ConvCache(NamedTuple):
    """What ``conv2d_backward`` needs from the forward pass: the padded input, not the column matrix."""

    padded: Padded
    weight: object  # (O, C/groups, kh, kw)
    groups: int
    x_shape: tuple
    has_bias: bool


def _check_conv_args(x, weight, groups, where):
    _check_input(x, where)
    if getattr(weight, "ndim", None) != 4:
        raise ValueError(f"{where}: weight must be 4-D, got shape {getattr(weight, 'shape', None)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r}")
    C = x.shape[1]
    if C % groups:
        raise ValueError(f"{where}: input channels {C} not divisible by groups={groups}")


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D convolution (cross-correlation, as in every DL framework).

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(O, C // groups, kh, kw)``.
        bias: ``(O,)`` or None.
        stride, dilation: int or pair. padding: int, pair, 4-tuple, ``"same"`` or ``"valid"``.
        groups: channel groups; ``groups == C`` is a depthwise convolution.
    Returns:
        ``(y, cache)`` with ``y (N, O, OH, OW)`` (a channel-major view, see the
        module docstring) and ``cache`` for ``conv2d_backward``.
    """
    where = "conv2d"
    _check_conv_args(x, weight, groups, where)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if Cg * groups != C or O % groups:
        raise ValueError(
            f"{where}: weight {weight.shape} with groups={groups} expects {Cg * groups} input channels and "
            f"out channels divisible by {groups}; got input {x.shape}"
        )
    geo = conv_geometry((H, W), (kh, kw), stride, padding, dilation, where)
    p = _pad_channel_major(x, geo)
    y = _conv_blocks(p, weight, groups, bias)[..., :geo.out_size[1]]
    return y.transpose(1, 0, 2, 3), ConvCache(p, weight, groups, x.shape, bias is not None)


def conv2d_backward(dy, cache: ConvCache, input_grad: bool = True, weight_grad: bool = True,
                    bias_grad: bool = True):
    """Gradients of ``conv2d_forward``.

    ``dW = dy @ col.T`` (per group), ``db = sum of dy over (N, OH, OW)``,
    ``dx = col2im(W.T @ dy)`` (the book's ch. 7.4 backward; for stride 1 the
    equivalent full correlation of ``dy`` with the flipped kernel).

    Args:
        dy: ``(N, O, OH, OW)``.
        input_grad / weight_grad / bias_grad: skip work nobody needs (first layer, frozen weights).
    Returns:
        ``(dx, dw, db)``; entries not requested (or no bias) are None.
    """
    p, weight, groups, x_shape, has_bias = cache
    O = weight.shape[0]
    expected = (x_shape[0], O, *p.geo.out_size)
    if tuple(dy.shape) != expected:
        raise ValueError(f"conv2d_backward: dy has shape {tuple(dy.shape)}, expected {expected}")
    if input_grad and weight_grad and p.geo.stride == (1, 1):
        dx, dw, q = _stride1_backward(dy, p, weight, groups)
        db = None
        if has_bias and bias_grad:  # q.buf holds all of dy and zeros, unless padding > span cropped it
            db = q.buf.reshape(O, -1).sum(axis=1) if min(q.geo.padding) >= 0 else dy.sum(axis=(0, 2, 3))
        return dx, dw, db
    dw = db = None
    if weight_grad or (has_bias and bias_grad):
        dw, db = _param_grads(dy.transpose(1, 0, 2, 3), p, groups, weight.shape, weight_grad, has_bias and bias_grad)
    dx = _input_grad(dy, weight, p.geo, groups) if input_grad else None
    return dx, dw, db


# The transposed convolution builds on the kernels above, so its module imports
# this one; it is re-exported lazily (PEP 562) to keep that import one-way.
_CONV_TRANSPOSE_NAMES = ("ConvTransposeCache", "conv_transpose2d_forward", "conv_transpose2d_backward")


def __getattr__(name):
    if name in _CONV_TRANSPOSE_NAMES:
        from . import conv_transpose
        value = globals()[name] = getattr(conv_transpose, name)  # bound now: later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
