"""Convolution kernels: the output-size formula, im2col/col2im, conv2d and conv_transpose2d.

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
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module

__all__ = [
    "ConvGeometry", "pair", "resolve_padding", "conv_output_size", "conv_geometry",
    "conv_transpose_output_size", "unfold", "fold", "im2col", "col2im", "ConvCache", "ConvTransposeCache",
    "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
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


# ------------------------------------------------------------- conv_transpose2d
class ConvTransposeCache(NamedTuple):
    x: object  # (N, C, H, W) input
    weight: object  # (C, O/g, kh, kw)
    geo: ConvGeometry  # geometry of the *adjoint* convolution (output -> input)
    groups: int
    has_bias: bool


def conv_transpose2d_forward(x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1,
                             groups: int = 1):
    """Transposed convolution ("deconvolution"): the adjoint of ``conv2d`` w.r.t. its input.

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(C, O // groups, kh, kw)`` (PyTorch's ``ConvTranspose2d`` layout).
        padding: int or pair (removed from both sides of the output).
        output_padding: int or pair, ``< max(stride, dilation)``: extra rows/cols at the bottom/right that
            pick one of the several output sizes a strided conv maps to the same input size.
    Returns:
        ``(y, cache)``; ``y (N, O, OH, OW)`` with
        ``OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1``.
    """
    where = "conv_transpose2d"
    _check_conv_args(x, weight, groups, where)
    N, C, H, W = x.shape
    Cw, Og, kh, kw = weight.shape
    if Cw != C:
        raise ValueError(f"{where}: weight {weight.shape} expects {Cw} input channels, got input {x.shape}")
    s = pair(stride, "stride", where)
    d = pair(dilation, "dilation", where)
    p = pair(padding, "padding", where, minimum=0)
    op = pair(output_padding, "output_padding", where, minimum=0)
    for a in range(2):
        if op[a] >= max(s[a], d[a]):
            raise ValueError(
                f"{where}: output_padding {output_padding!r} must be smaller than stride {stride!r} or dilation "
                f"{dilation!r}"
            )
    out = tuple(conv_transpose_output_size(n, k, st, pd, o, dl)
                for n, k, st, pd, o, dl in zip((H, W), (kh, kw), s, p, op, d))
    if min(out) < 1:
        raise ValueError(f"{where}: input {(H, W)} gives a non-positive output size {out}")
    # The adjoint convolution maps the output back onto exactly (H, W) windows; when
    # output_padding comes from dilation > stride the last rows/cols get only the bias.
    geo = ConvGeometry((kh, kw), s, d, (p[0], p[0], p[1], p[1]), out, (H, W))
    y = _input_grad(x, weight, geo, groups)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1).astype(y.dtype, copy=False)
    return y, ConvTransposeCache(x, weight, geo, groups, bias is not None)


def conv_transpose2d_backward(dy, cache: ConvTransposeCache, input_grad: bool = True, weight_grad: bool = True,
                              bias_grad: bool = True):
    """Gradients of ``conv_transpose2d_forward``: ``dx = conv2d(dy, W)``, ``dW = x @ unfold(dy).T``.

    Returns ``(dx, dw, db)`` like ``conv2d_backward``.
    """
    x, weight, geo, groups, has_bias = cache
    O = weight.shape[1] * groups
    expected = (x.shape[0], O, *geo.in_size)
    if tuple(dy.shape) != expected:
        raise ValueError(f"conv_transpose2d_backward: dy has shape {tuple(dy.shape)}, expected {expected}")
    dx = dw = db = None
    if input_grad or weight_grad:
        p = _pad_channel_major(dy, geo)
        if input_grad and weight_grad:  # one column matrix of dy serves both products
            y, G = _conv_blocks(p, weight, groups, grad_source=x.transpose(1, 0, 2, 3))
            dx, dw = y[..., :geo.out_size[1]].transpose(1, 0, 2, 3), G.reshape(weight.shape)
        elif input_grad:
            dx = _conv_blocks(p, weight, groups)[..., :geo.out_size[1]].transpose(1, 0, 2, 3)
        else:
            dw, _ = _param_grads(x.transpose(1, 0, 2, 3), p, groups, weight.shape, True, False)
    if has_bias and bias_grad:
        db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
