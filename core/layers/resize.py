"""Resizing and joining layers: ``Upsample``, ``ZeroPad2d`` and ``Concat`` (skip connections)."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..functional import resize as F
from ..module import Module
from ._validation import float_input, require_forward


class Upsample(Module):
    """Resize ``(N, C, H, W)`` to ``size`` or by ``scale_factor`` (``torch.nn.Upsample``).

    Args:
        size: output ``(OH, OW)`` (int or pair), or
        scale_factor: multiplier (number or pair); output ``floor(H * factor)``.
        mode: ``"nearest"`` or ``"bilinear"``.
        align_corners: bilinear only (default False, PyTorch's default): True
            aligns the centres of the corner pixels, False their outer edges.
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
        super().__init__()
        if mode not in F.MODES:
            raise ValueError(f"Upsample: mode must be one of {F.MODES}, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"Upsample: give exactly one of size and scale_factor, got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError(f"Upsample: align_corners applies to bilinear mode only, got {align_corners!r}")
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners
        self._cache = None

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        corners = "" if self.align_corners is None else f", align_corners={self.align_corners}"
        return f"{what}, mode={self.mode!r}{corners}"

    def forward(self, x):
        where = f"Upsample({self.extra_repr()})"
        x = float_input(x, where)
        try:
            y, self._cache = F.upsample_forward(x, self.size, self.scale_factor, self.mode, self.align_corners)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return y

    def backward(self, dy):
        return F.upsample_backward(dy, require_forward(self._cache, "Upsample"))


class ZeroPad2d(Module):
    """Zero-pad the spatial axes of ``(N, C, H, W)``.

    ``padding``: int (all sides) or ``(left, right, top, bottom)`` as in PyTorch.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = F.pad_sides(padding, "ZeroPad2d")
        self._shape = None

    def extra_repr(self) -> str:
        return f"padding={self.padding}"

    def forward(self, x):
        x = float_input(x, f"ZeroPad2d({self.extra_repr()})")
        if x.ndim != 4:
            raise ValueError(f"ZeroPad2d: expected input (N, C, H, W), got shape {x.shape}")
        self._shape = x.shape
        return F.pad2d(x, self.padding)

    def backward(self, dy):
        require_forward(self._shape, "ZeroPad2d")
        return F.pad2d_backward(dy, self.padding)


class Concat(Module):
    """Concatenate ``(N, C_i, H, W)`` arrays along channels (U-Net / DenseNet skip connections).

    ``forward([a, b, ...])`` (or ``forward(a, b, ...)``) returns ``(N, sum C_i, H, W)``;
    ``backward(dy)`` returns the list of gradients ``[da, db, ...]`` in input order.
    ``axis`` (default 1, channels) may be changed for other layouts.
    """

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = int(axis)
        self._sizes = None

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, *xs):
        if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
            xs = tuple(xs[0])
        if not xs:
            raise ValueError("Concat: expected at least one input array")
        xs = [float_input(x, f"Concat input{i}") for i, x in enumerate(xs)]
        ref = xs[0]
        ax = self.axis % ref.ndim
        for i, x in enumerate(xs[1:], 1):
            if x.ndim != ref.ndim or any(a != b for d, (a, b) in enumerate(zip(x.shape, ref.shape)) if d != ax):
                raise ValueError(
                    f"Concat(axis={self.axis}): input{i} has shape {x.shape}, input0 has {ref.shape}; all axes "
                    f"but {self.axis} must match"
                )
        self._sizes = [(x.shape[ax], x.dtype) for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=ax)

    def backward(self, dy):
        sizes = require_forward(self._sizes, "Concat")
        xp = get_array_module(dy)
        ax = self.axis % dy.ndim
        bounds = np.cumsum([n for n, _ in sizes])[:-1]
        return [g.astype(dt, copy=False) for g, (_, dt) in zip(xp.split(dy, [int(b) for b in bounds], axis=ax), sizes)]
