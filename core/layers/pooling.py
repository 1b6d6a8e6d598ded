"""Pooling layers: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` and ``GlobalAvgPool2d``.

Arguments and output sizes follow ``torch.nn``; the math is in
``core.functional.pooling``. Pooling has no parameters.
"""
from __future__ import annotations

from ..functional import pooling as F
from ..functional.im2col import pair
from ..module import Module
from ._validation import float_input, require_forward


def _check_4d(x, where: str):
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input (N, C, H, W), got shape {x.shape}")


class _Pool2d(Module):
    def __init__(self, kernel_size, stride, padding, ceil_mode, where):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", where)
        self.padding = pair(padding, "padding", where, minimum=0)
        self.ceil_mode = bool(ceil_mode)
        self._cache = None

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """Max over ``kernel_size`` windows of ``(N, C, H, W)`` (the book's Pooling layer, generalised).

    Args:
        kernel_size: int or ``(kh, kw)``. stride: defaults to ``kernel_size``.
        padding: implicit ``-inf`` border, at most half the kernel. dilation: window spacing.
        ceil_mode: round the output size up (keeping a partial last window).

    Output ``(N, C, OH, OW)``, ``OH = floor((H + 2p - dilation*(k-1) - 1) / stride) + 1``.
    Backward routes each gradient to the first maximum of its window, as PyTorch does.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, ceil_mode, "MaxPool2d")
        self.dilation = pair(dilation, "dilation", "MaxPool2d")
        F.check_pool_padding(self.kernel_size, self.padding, self.dilation, "MaxPool2d")

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")

    def forward(self, x):
        where = f"MaxPool2d({self.extra_repr()})"
        x = float_input(x, where)
        _check_4d(x, where)
        try:
            y, self._cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                                  self.ceil_mode)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return y

    def backward(self, dy):
        return F.max_pool2d_backward(dy, require_forward(self._cache, "MaxPool2d"))


class AvgPool2d(_Pool2d):
    """Mean over ``kernel_size`` windows of ``(N, C, H, W)``.

    Args:
        kernel_size, stride, padding, ceil_mode: as ``MaxPool2d`` (padding is zeros).
        count_include_pad: divide by the whole window including padded zeros
            (PyTorch's default) or only by the real input elements it covers.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, "AvgPool2d")
        self.count_include_pad = bool(count_include_pad)
        F.check_pool_padding(self.kernel_size, self.padding, (1, 1), "AvgPool2d")

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")

    def forward(self, x):
        where = f"AvgPool2d({self.extra_repr()})"
        x = float_input(x, where)
        _check_4d(x, where)
        try:
            y, self._cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                                  self.count_include_pad)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return y

    def backward(self, dy):
        return F.avg_pool2d_backward(dy, require_forward(self._cache, "AvgPool2d"))


class AdaptiveAvgPool2d(Module):
    """Average-pool ``(N, C, H, W)`` to a fixed ``output_size`` ``(OH, OW)`` for any ``H, W``.

    ``output_size``: int or pair; an entry ``None`` keeps that input size.
    Bins follow PyTorch (``floor(i*H/OH)`` to ``ceil((i+1)*H/OH)``; they may overlap).
    ``output_size=1`` is global average pooling (output ``(N, C, 1, 1)``).
    """

    def __init__(self, output_size):
        super().__init__()
        if isinstance(output_size, (tuple, list)):
            if len(output_size) != 2:
                raise ValueError(f"AdaptiveAvgPool2d: output_size must be an int or a pair, got {output_size!r}")
            sizes = tuple(output_size)
        else:
            sizes = (output_size, output_size)
        for s in sizes:
            if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
                raise ValueError(f"AdaptiveAvgPool2d: output_size entries must be positive ints or None, "
                                 f"got {output_size!r}")
        self.output_size = sizes
        self._cache = None

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def forward(self, x):
        where = f"AdaptiveAvgPool2d({self.extra_repr()})"
        x = float_input(x, where)
        _check_4d(x, where)
        y, self._cache = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return y

    def backward(self, dy):
        return F.adaptive_avg_pool2d_backward(dy, require_forward(self._cache, "AdaptiveAvgPool2d"))


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Global average pooling: ``(N, C, H, W) -> (N, C, 1, 1)`` (``AdaptiveAvgPool2d(1)``)."""

    def __init__(self):
        super().__init__(1)

    def extra_repr(self) -> str:
        return ""


#: Short alias used by model builders.
GlobalAvgPool = GlobalAvgPool2d
