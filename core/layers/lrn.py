"""Local response normalisation across channels (Krizhevsky et al. 2012, AlexNet, sec. 3.3)."""
from __future__ import annotations

from ..backend import get_array_module
from ..module import Module
from ._validation import float_input, require_forward


def _window_sum(a, lo: int, hi: int):
    """``out[:, c] = sum_{o = lo..hi} a[:, c + o]`` over valid channels (zeros outside), per offset slices."""
    xp = get_array_module(a)
    C = a.shape[1]
    out = xp.zeros_like(a)
    for o in range(lo, hi + 1):
        if o >= 0:
            out[:, :C - o] += a[:, o:]
        else:
            out[:, -o:] += a[:, :C + o]
    return out


class LocalResponseNorm(Module):
    """``y_c = x_c / (k + alpha / n * sum_{c' in window(c)} x_c'^2) ** beta`` (PyTorch's form).

    The window of channel ``c`` is ``[c - n//2, c + (n-1)//2]`` clipped to the
    channels; the sum is divided by ``n`` whatever the clipping (zero padding,
    as ``torch.nn.LocalResponseNorm``). The AlexNet paper's ``alpha`` multiplies the
    plain sum, so its setting ``n=5, alpha=1e-4, beta=0.75, k=2`` is
    ``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)`` here.

    Shapes: input ``(N, C, ...)`` (any trailing axes), output the same.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        if k <= 0 and beta != 0:
            raise ValueError(f"LocalResponseNorm: k must be > 0 (it keeps the base positive), got {k!r}")
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)
        self._cache = None

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, x):
        where = f"LocalResponseNorm({self.extra_repr()})"
        x = float_input(x, where)
        if x.ndim < 3:
            raise ValueError(f"{where}: expected input (N, C, ...) with at least 3 axes, got shape {x.shape}")
        n = self.size
        t = x.dtype.type
        base = _window_sum(x * x, -(n // 2), (n - 1) // 2)
        base *= t(self.alpha / n)
        base += t(self.k)
        scale = base ** t(-self.beta)
        self._cache = (x, base, scale)
        return x * scale

    def backward(self, dy):
        # y_c = x_c s_c^-b,  s_c = k + a/n sum_{c' in win(c)} x_c'^2
        # dx_j = dy_j s_j^-b - (2ab/n) x_j sum_{c: j in win(c)} dy_c x_c s_c^(-b-1)
        # and j in win(c) <=> c in [j - (n-1)//2, j + n//2] (the mirrored window).
        x, base, scale = require_forward(self._cache, "LocalResponseNorm")
        n = self.size
        t = x.dtype.type
        u = dy * x * scale / base
        dx = dy * scale
        dx -= t(2 * self.alpha * self.beta / n) * x * _window_sum(u, -((n - 1) // 2), n // 2)
        return dx
