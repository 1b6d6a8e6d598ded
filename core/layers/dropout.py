"""Inverted dropout (Srivastava et al. 2014): ``Dropout`` per element, ``Dropout2d`` per channel.

In training each unit is kept with probability ``1 - p`` and the kept ones
are scaled by ``1 / (1 - p)``, so the expected activation equals the input
and evaluation is the identity (the book's version instead scales by
``1 - p`` at test time). Masks come from the layer's own
``numpy.random.Generator`` (``self.rng``), so a seed reproduces them and a
checkpoint can save its state.
"""
from __future__ import annotations

import numpy as np

from ..backend import as_generator, get_array_module
from ..module import Module
from ._validation import float_input, require_forward


class _DropoutBase(Module):
    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p (drop probability) must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = as_generator(rng)
        self._mask = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def _mask_shape(self, x) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} must implement _mask_shape()")

    def forward(self, x):
        x = float_input(x, f"{type(self).__name__}(p={self.p})")
        shape = self._mask_shape(x)
        if not self.training or self.p == 0.0:
            self._mask = False  # identity: backward passes dy through
            return x
        xp = get_array_module(x)
        if self.p == 1.0:
            mask = xp.zeros(shape, dtype=x.dtype)
        else:
            draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
            uniform = self.rng.random(shape, dtype=draw_dtype)
            if xp is not np:
                uniform = xp.asarray(uniform)
            mask = (uniform >= self.p).astype(x.dtype)
            mask *= x.dtype.type(1.0 / (1.0 - self.p))
        self._mask = mask
        return x * mask

    def backward(self, dy):
        mask = require_forward(self._mask, type(self).__name__)
        return dy if mask is False else dy * mask


class Dropout(_DropoutBase):
    """Zero each element with probability ``p`` in training, scale survivors by ``1/(1-p)``.

    Args:
        p: drop probability in [0, 1].
        rng: seed or ``numpy.random.Generator`` for the masks.

    Shapes: any; output has the input's shape and dtype. ``eval()`` makes it the identity.
    """

    def _mask_shape(self, x) -> tuple:
        return x.shape


class Dropout2d(_DropoutBase):
    """Zero whole channels of ``(N, C, H, W)`` with probability ``p`` (Tompson et al. 2015).

    Neighbouring pixels of a feature map are strongly correlated, so
    per-element dropout barely regularises convolutions; dropping the whole
    map does. Survivors are scaled by ``1/(1-p)``.
    """

    def _mask_shape(self, x) -> tuple:
        if x.ndim != 4:
            raise ValueError(f"Dropout2d(p={self.p}): expected input (N, C, H, W), got shape {x.shape}")
        return x.shape[:2] + (1, 1)
