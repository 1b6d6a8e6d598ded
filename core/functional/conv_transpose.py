"""Transposed convolution ("deconvolution"): the adjoint of ``conv2d`` with respect to its input.

Its forward pass is exactly ``conv2d``'s input gradient and its backward pass
a ``conv2d`` of ``dy``, so it runs on the blocked column-matrix kernels of
``core.functional.conv`` (see that module for the memory order: outputs are
channel-major views). Shapes follow PyTorch: input ``(N, C, H, W)``, weight
``(C, O // groups, kh, kw)`` (``ConvTranspose2d``'s layout).
"""
from __future__ import annotations

from typing import NamedTuple

from .conv import _check_conv_args, _conv_blocks, _input_grad, _pad_channel_major, _param_grads
from .im2col import ConvGeometry, conv_transpose_output_size, pair

__all__ = ["ConvTransposeCache", "conv_transpose2d_forward", "conv_transpose2d_backward"]


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
