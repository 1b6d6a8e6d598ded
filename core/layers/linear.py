"""Affine and shape layers: ``Linear`` (the book's Affine), ``Identity``, ``Flatten``."""
from __future__ import annotations

import math

import numpy as np

from ..backend import DEFAULT_DTYPE, as_generator, check_float_dtype
from ..init import get_initializer, zeros
from ..module import Module, Parameter
from ._validation import float_input, require_forward


class Linear(Module):
    """``y = x @ weight.T + bias`` on the last axis.

    Args:
        in_features, out_features: sizes of the last axis of input and output.
        bias: add a learnable bias (initialised to zero).
        init: weight initialiser, any name ``core.init.get_initializer``
            accepts (default ``"he_normal"``: the book's choice for ReLU nets;
            PyTorch's own default is a uniform ``1/sqrt(in)`` bound), a std
            (float) or a callable ``f(shape, rng=..., dtype=...)``.
        rng: seed or ``numpy.random.Generator`` for the initial weights.
        dtype: parameter dtype.

    Shapes: input ``(N, in)`` or ``(..., in)``; output ``(..., out)``;
    ``weight (out, in)`` and ``bias (out,)``, PyTorch's layout and names.
    A floating input of another dtype is cast to the weight dtype (so float64
    data meeting a float32 layer computes in float32); integer input raises
    ``TypeError``. When ``requires_input_grad`` is False on this layer its
    ``backward`` skips ``dx`` (the largest matmul of a first layer) and returns None.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="he_normal",
                 rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        dtype = check_float_dtype(dtype, "Linear")
        self.in_features = in_features
        self.out_features = out_features
        initializer = get_initializer(init)
        self.weight = Parameter(initializer((out_features, in_features), rng=as_generator(rng), dtype=dtype))
        self.bias = Parameter(zeros((out_features,), dtype=dtype)) if bias else None
        self._x = None
        self._in_shape = None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x):
        w = self.weight.data
        x = float_input(x, f"Linear({self.extra_repr()})", w.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.extra_repr()}): expected input (..., {self.in_features}), got shape {x.shape}"
            )
        self._in_shape = x.shape
        if x.ndim != 2:  # one BLAS call on (M, in) instead of a stack of small ones
            x = x.reshape(-1, self.in_features)
        self._x = x
        if w.dtype == np.float16:
            # NumPy has no BLAS kernel for float16: multiply in float32, round once (inference).
            y = (x.astype(np.float32) @ w.T.astype(np.float32)).astype(np.float16)
        else:
            y = x @ w.T
        if self.bias is not None:
            y += self.bias.data
        return y if len(self._in_shape) == 2 else y.reshape(self._in_shape[:-1] + (self.out_features,))

    def backward(self, dy):
        # y = x W^T + b  =>  dW = dy^T x,  db = sum_rows dy,  dx = dy W
        x = require_forward(self._x, "Linear")
        dy = dy.reshape(-1, self.out_features) if dy.ndim != 2 else dy
        if self.weight.trainable:
            self.weight.accumulate_grad(dy.T @ x)
        if self.bias is not None and self.bias.trainable:
            self.bias.accumulate_grad(dy.sum(axis=0))
        if not self.requires_input_grad:
            return None
        dx = dy @ self.weight.data
        return dx if len(self._in_shape) == 2 else dx.reshape(self._in_shape)


class Identity(Module):
    """``y = x``; a placeholder (e.g. a removed classifier head)."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


class Flatten(Module):
    """``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``; backward restores the input shape."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Flatten: expected an input with a batch axis (N, ...), got {getattr(x, 'shape', x)!r}")
        self._shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dy):
        return dy.reshape(require_forward(self._shape, "Flatten"))
