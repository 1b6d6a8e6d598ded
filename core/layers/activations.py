"""Activation layers: thin stateful wrappers over ``core.functional.activations``.

Each caches the one array its derivative needs (output or input) and keeps
the input's floating dtype; integer input raises ``TypeError``.
"""
from __future__ import annotations

from .. import functional as F
from ..module import Module
from ._validation import float_input, require_forward


class ReLU(Module):
    """``max(x, 0)``; gradient 1 where ``x > 0`` (0 at the kink, as in PyTorch)."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        y = F.relu(float_input(x, "ReLU"))
        self._y = y
        return y

    def backward(self, dy):
        return F.relu_backward(dy, require_forward(self._y, "ReLU"))


class LeakyReLU(Module):
    """``x`` for ``x > 0``, else ``negative_slope * x`` (Maas et al. 2013)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self._x = None

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x):
        x = float_input(x, "LeakyReLU")
        self._x = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, dy):
        return F.leaky_relu_backward(dy, require_forward(self._x, "LeakyReLU"), self.negative_slope)


class ReLU6(Module):
    """``min(max(x, 0), 6)``."""

    def __init__(self):
        super().__init__()
        self._x = None

    def forward(self, x):
        x = float_input(x, "ReLU6")
        self._x = x
        return F.relu6(x)

    def backward(self, dy):
        return F.relu6_backward(dy, require_forward(self._x, "ReLU6"))


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``, overflow-free for any finite ``x``."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        y = F.sigmoid(float_input(x, "Sigmoid"))
        self._y = y
        return y

    def backward(self, dy):
        return F.sigmoid_backward(dy, require_forward(self._y, "Sigmoid"))


class Tanh(Module):
    """``tanh(x)``."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        y = F.tanh(float_input(x, "Tanh"))
        self._y = y
        return y

    def backward(self, dy):
        return F.tanh_backward(dy, require_forward(self._y, "Tanh"))


class GELU(Module):
    """``x * Phi(x)`` (``approximate="none"``, PyTorch's default) or its tanh approximation."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._x = None

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"

    def forward(self, x):
        x = float_input(x, "GELU")
        self._x = x
        return F.gelu(x, self.approximate)

    def backward(self, dy):
        return F.gelu_backward(dy, require_forward(self._x, "GELU"), self.approximate)


class Softmax(Module):
    """Softmax along ``axis`` (default last). For classification training use
    ``CrossEntropyLoss`` on logits instead: it fuses softmax and is stabler."""

    def __init__(self, axis: int = -1):
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Softmax: axis must be an int, got {axis!r}")
        self.axis = axis
        self._y = None

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, x):
        x = float_input(x, "Softmax")
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"Softmax(axis={self.axis}): input of shape {x.shape} has no axis {self.axis}")
        y = F.softmax(x, self.axis)
        self._y = y
        return y

    def backward(self, dy):
        return F.softmax_backward(dy, require_forward(self._y, "Softmax"), self.axis)


class Step(Module):
    """The perceptron's step function: 1 where ``x > 0``, else 0 (book ch. 2-3).

    Its derivative is 0 wherever it exists, which is why networks trained by
    gradient descent replace it with sigmoid/ReLU; ``backward`` returns zeros.
    """

    def __init__(self):
        super().__init__()
        self._x = None

    def forward(self, x):
        x = float_input(x, "Step")
        self._x = x
        return F.step(x)

    def backward(self, dy):
        return F.step_backward(dy, require_forward(self._x, "Step"))
