"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d`` (PyTorch's names, layouts and semantics).

The layers own the parameters; the math is in ``core.functional.conv``. The
output of a convolution is a channel-major view ``(N, C, H, W)`` (see that
module): values, shapes and indexing are ordinary, only the memory order
differs, which lets the next layer skip a transpose.

Float16 inference ("bit reduction", the book's ch. 8.3.4): ``model.astype("float16")``
casts every parameter and buffer (halving parameter memory) and each layer
casts a floating input to its own dtype. The convolution products multiply
float16 data with float32 accumulation (NumPy has no float16 BLAS) and round
the result to float16. ``model.astype("float32")`` casts back (to the
float16-rounded values). ``tests/core/test_conv_training.py`` checks on a
trained CNN that accuracy moves by less than 0.5 percentage points.
"""
from __future__ import annotations

from ..backend import DEFAULT_DTYPE, as_generator, check_float_dtype
from ..functional import conv as F
from ..functional import conv_transpose as FT
from ..functional import depthwise as DW
from ..init import get_initializer, zeros
from ..module import Module, Parameter
from ._validation import float_input, require_forward


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return value


class _ConvBase(Module):
    def _check_channels(self, in_channels, out_channels, groups, where):
        _positive_int(in_channels, "in_channels", where)
        _positive_int(out_channels, "out_channels", where)
        _positive_int(groups, "groups", where)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{where}: in_channels={in_channels} and out_channels={out_channels} must both be divisible "
                f"by groups={groups}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups

    def _make_params(self, shape, bias: bool, init, rng, dtype, where) -> None:
        """``weight`` of ``shape`` from ``init``, a zero ``bias`` of ``out_channels`` (or None)."""
        dtype = check_float_dtype(dtype, where)
        self.weight = Parameter(get_initializer(init)(shape, rng=as_generator(rng), dtype=dtype))
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype)) if bias else None
        self._cache = None

    def _grads(self, dx, dw, db):
        if dw is not None:
            self.weight.accumulate_grad(dw)
        if db is not None:
            self.bias.accumulate_grad(db)
        return dx

    def _describe(self, padding: str) -> str:
        """``extra_repr`` text: channels, kernel, stride, ``padding`` (already formatted), the non-defaults."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}{padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")

    def _checked_input(self, x):
        """Validate ``x`` as ``(N, in_channels, H, W)`` in the weight's dtype; returns ``(x, where)``."""
        where = f"{type(self).__name__}({self.extra_repr()})"
        x = float_input(x, where, self.weight.data.dtype)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{where}: expected input (N, {self.in_channels}, H, W), got shape {x.shape}")
        return x, where

    def _flags(self):
        return dict(input_grad=bool(self.requires_input_grad), weight_grad=self.weight.trainable,
                    bias_grad=self.bias is not None and self.bias.trainable)


class Conv2d(_ConvBase):
    """2-D convolution over ``(N, C_in, H, W)``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, dilation: int or ``(h, w)``.
        padding: int, ``(h, w)``, ``(top, bottom, left, right)``, ``"valid"`` or
            ``"same"`` (stride 1 only; an even kernel pads one more at the bottom/right).
        groups: split channels into groups convolved separately; ``groups == in_channels``
            is a depthwise convolution (MobileNet).
        bias: learnable per-channel bias (initialised to zero).
        init: weight initialiser (see ``core.init.get_initializer``); default
            ``"he_normal"`` with ``fan_in = in_channels / groups * kh * kw``.
        rng: seed or Generator for the initial weights. dtype: parameter dtype.

    Shapes: ``weight (out_channels, in_channels // groups, kh, kw)``, ``bias (out_channels,)``;
    output ``(N, out_channels, OH, OW)`` with
    ``OH = floor((H + pad_top + pad_bottom - dilation * (kh - 1) - 1) / stride) + 1``.
    A floating input of another dtype is cast to the weight dtype; integer input
    raises ``TypeError``. With ``requires_input_grad = False`` on this layer (a
    network's first layer) ``backward`` skips ``dx`` and returns None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, init="he_normal", rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        where = "Conv2d"
        self._check_channels(in_channels, out_channels, groups, where)
        self.kernel_size = F.pair(kernel_size, "kernel_size", where)
        self.stride = F.pair(stride, "stride", where)
        self.dilation = F.pair(dilation, "dilation", where)
        F.resolve_padding(padding, self.kernel_size, self.stride, self.dilation, where)  # validate now
        self.padding = padding if isinstance(padding, str) else (
            tuple(padding) if isinstance(padding, (tuple, list)) and len(padding) == 4
            else F.pair(padding, "padding", where, minimum=0))
        self._make_params((out_channels, in_channels // groups) + self.kernel_size, bias, init, rng, dtype, where)

    def extra_repr(self) -> str:
        padding = "" if self.padding in ((0, 0), "valid") else f", padding={self.padding!r}"
        return self._describe(padding)

    def forward(self, x):
        w = self.weight.data
        x, where = self._checked_input(x)
        b = None if self.bias is None else self.bias.data
        try:
            if self._is_depthwise():
                # One filter per channel: summing the kh*kw taps directly beats C tiny matmuls.
                y, self._cache = DW.depthwise_conv2d_forward(x, w, b, self.stride, self.padding, self.dilation)
            else:
                y, self._cache = F.conv2d_forward(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return y

    def _is_depthwise(self) -> bool:
        return 1 < self.groups == self.in_channels == self.out_channels

    def backward(self, dy):
        cache = require_forward(self._cache, "Conv2d")
        if isinstance(cache, DW.DepthwiseCache):
            return self._grads(*DW.depthwise_conv2d_backward(dy, cache, **self._flags()))
        return self._grads(*F.conv2d_backward(dy, cache, **self._flags()))


class ConvTranspose2d(_ConvBase):
    """Transposed convolution (learned upsampling), the adjoint of ``Conv2d`` w.r.t. its input.

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
        init, rng, dtype: as ``Conv2d``.
        padding: int or ``(h, w)``: ``dilation * (k - 1) - padding`` zeros are
            implicitly added to each side of the input (PyTorch's convention).
        output_padding: int or ``(h, w)``, smaller than stride or dilation: extra
            bottom/right rows to pick one of the input sizes a strided Conv2d maps
            to the same output size.

    Shapes: ``weight (in_channels, out_channels // groups, kh, kw)`` (PyTorch's
    layout), output ``(N, out_channels, OH, OW)`` with
    ``OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1``.
    The initialiser's fan-in is read off the weight's second axis,
    ``out_channels / groups * kh * kw``, as PyTorch does for this layout.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, init="he_normal", rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        where = "ConvTranspose2d"
        self._check_channels(in_channels, out_channels, groups, where)
        self.kernel_size = F.pair(kernel_size, "kernel_size", where)
        self.stride = F.pair(stride, "stride", where)
        self.dilation = F.pair(dilation, "dilation", where)
        self.padding = F.pair(padding, "padding", where, minimum=0)
        self.output_padding = F.pair(output_padding, "output_padding", where, minimum=0)
        for a in range(2):
            if self.output_padding[a] >= max(self.stride[a], self.dilation[a]):
                raise ValueError(
                    f"{where}: output_padding {self.output_padding} must be smaller than stride {self.stride} "
                    f"or dilation {self.dilation}"
                )
        self._make_params((in_channels, out_channels // groups) + self.kernel_size, bias, init, rng, dtype, where)

    def extra_repr(self) -> str:
        padding = "" if self.padding == (0, 0) else f", padding={self.padding}"
        if self.output_padding != (0, 0):
            padding += f", output_padding={self.output_padding}"
        return self._describe(padding)

    def forward(self, x):
        w = self.weight.data
        x, where = self._checked_input(x)
        try:
            y, self._cache = FT.conv_transpose2d_forward(
                x, w, None if self.bias is None else self.bias.data, self.stride, self.padding,
                self.output_padding, self.dilation, self.groups)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return y

    def backward(self, dy):
        cache = require_forward(self._cache, "ConvTranspose2d")
        return self._grads(*FT.conv_transpose2d_backward(dy, cache, **self._flags()))
