"""Activation functions as pure forward/backward pairs.

Each ``name(x, ...)`` returns the activation; ``name_backward(dy, ...)``
returns ``dL/dx`` from ``dy = dL/dy`` and whatever the forward result the
layer kept (the output ``y`` where the derivative is cheapest in terms of it,
otherwise the input ``x``). Nothing here holds state; ``core.layers`` owns the
caching. Every function works on arrays of any shape and keeps the dtype.

``erf``/``erfc`` are W. J. Cody's rational Chebyshev approximations
(Math. Comp. 23 (1969) 631-637, as used in his SPECFUN ``CALERF``), vectorised:
NumPy has no ``erf`` and ``np.vectorize(math.erf)`` is a Python loop.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module

__all__ = [
    "erf", "erfc", "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "relu6", "relu6_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "gelu", "gelu_backward", "softmax", "softmax_backward", "step", "step_backward",
]

# ---------------------------------------------------------------------- erf
# Cody (1969): erf(x) = x P(x^2)/Q(x^2) for |x| <= 0.46875,
# erfc(x) = exp(-x^2) R(x)/S(x) for 0.46875 < x <= 4, and
# erfc(x) = exp(-x^2)/x (1/sqrt(pi) + z T(z)/U(z)), z = 1/x^2, for x > 4.
# Maximal relative error below 1e-16 per interval in exact arithmetic.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 0.56418958354775628695
_ERF_SPLIT = 0.46875


def _erf_small(x):
    """erf on |x| <= 0.46875 (float64)."""
    z = x * x
    num = _ERF_A[4] * z
    den = z
    for a, b in zip(_ERF_A[:3], _ERF_B[:3]):
        num = (num + a) * z
        den = (den + b) * z
    return x * (num + _ERF_A[3]) / (den + _ERF_B[3])


def _exp_minus_square(xp, y):
    # exp(-y^2) split as exp(-t^2) exp(-(y-t)(y+t)) with t = y rounded down to
    # 1/16: y*y would round before exponentiation and lose ~y^2 ulps (Cody).
    t = xp.trunc(y * 16.0) / 16.0
    return xp.exp(-t * t) * xp.exp(-(y - t) * (y + t))


def _erfc_large(xp, y):
    """erfc on y > 0.46875 (float64); erfc underflows to 0 beyond y ~ 26.6."""
    y = xp.minimum(y, 30.0)  # keeps inf finite (erfc(30) is 0 in float64 anyway)
    out = xp.empty_like(y)
    mid = y <= 4.0
    ym = y[mid]
    num = _ERFC_C[8] * ym
    den = ym
    for c, d in zip(_ERFC_C[:7], _ERFC_D[:7]):
        num = (num + c) * ym
        den = (den + d) * ym
    out[mid] = (num + _ERFC_C[7]) / (den + _ERFC_D[7]) * _exp_minus_square(xp, ym)
    far = ~mid
    yf = y[far]
    z = 1.0 / (yf * yf)
    num = _ERFC_P[5] * z
    den = z
    for p, q in zip(_ERFC_P[:4], _ERFC_Q[:4]):
        num = (num + p) * z
        den = (den + q) * z
    tail = z * (num + _ERFC_P[4]) / (den + _ERFC_Q[4])
    out[far] = (_INV_SQRT_PI - tail) / yf * _exp_minus_square(xp, yf)
    return out


def _as_float64(x):
    xp = get_array_module(x)
    x = xp.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return xp, x.astype(np.float64, copy=False), dtype


def erf(x):
    """Error function, elementwise; relative error ~1e-16 in float64 (computed in float64)."""
    xp, x64, dtype = _as_float64(x)
    out = xp.empty_like(x64)
    small = xp.abs(x64) <= _ERF_SPLIT
    out[small] = _erf_small(x64[small])
    big = ~small  # NaN lands here and stays NaN
    xb = x64[big]
    out[big] = xp.copysign(1.0 - _erfc_large(xp, xp.abs(xb)), xb)
    return out.astype(dtype, copy=False)


def erfc(x):
    """Complementary error function ``1 - erf(x)``, accurate (relatively) in the far tail."""
    xp, x64, dtype = _as_float64(x)
    out = xp.empty_like(x64)
    small = xp.abs(x64) <= _ERF_SPLIT
    out[small] = 1.0 - _erf_small(x64[small])
    big = ~small
    xb = x64[big]
    tail = _erfc_large(xp, xp.abs(xb))
    out[big] = xp.where(xb < 0, 2.0 - tail, tail)
    return out.astype(dtype, copy=False)


# --------------------------------------------------------------- rectifiers
def relu(x):
    """``max(x, 0)``; the backward needs only the output."""
    xp = get_array_module(x)
    return xp.maximum(x, 0)


def relu_backward(dy, y):
    """``dy * [x > 0]``, read off the output ``y = relu(x)`` (``y > 0`` iff ``x > 0``)."""
    return dy * (y > 0)


def leaky_relu(x, negative_slope: float = 0.01):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    xp = get_array_module(x)
    return xp.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dy, x, negative_slope: float = 0.01):
    xp = get_array_module(dy)
    return xp.where(x > 0, dy, dy * dy.dtype.type(negative_slope))


def relu6(x):
    """``min(max(x, 0), 6)`` (MobileNet)."""
    xp = get_array_module(x)
    return xp.clip(x, 0, 6)


def relu6_backward(dy, x):
    # Gradient 1 strictly inside (0, 6) and 0 at and beyond the kinks, as torch's hardtanh.
    return dy * ((x > 0) & (x < 6))


# ------------------------------------------------------------------ sigmoid
def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow: ``exp`` only ever sees ``-|x|``."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


def sigmoid_backward(dy, y):
    """``dy * y * (1 - y)`` from the output ``y``."""
    return dy * y * (1 - y)


def tanh(x):
    xp = get_array_module(x)
    return xp.tanh(x)


def tanh_backward(dy, y):
    """``dy * (1 - y^2)`` from the output ``y``."""
    return dy * (1 - y * y)


# --------------------------------------------------------------------- GELU
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C = math.sqrt(2.0 / math.pi)
_TANH_K = 0.044715


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x, approximate: str = "none"):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016).

    ``"none"``: ``x * Phi(x)`` with ``Phi(x) = erfc(-x / sqrt 2) / 2`` (erfc keeps
    the negative tail accurate); ``"tanh"``:
    ``x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, both as in PyTorch.
    """
    _check_approximate(approximate)
    xp = get_array_module(x)
    if approximate == "tanh":
        inner = _TANH_C * (x + _TANH_K * x * x * x)
        return 0.5 * x * (1 + xp.tanh(inner))
    return x * (0.5 * erfc(-_SQRT_HALF * x))


def gelu_backward(dy, x, approximate: str = "none"):
    """``dy * d gelu/dx``: ``Phi(x) + x phi(x)`` (exact) or the derivative of the tanh form."""
    _check_approximate(approximate)
    xp = get_array_module(x)
    if approximate == "tanh":
        t = xp.tanh(_TANH_C * (x + _TANH_K * x * x * x))
        dinner = _TANH_C * (1 + 3 * _TANH_K * x * x)
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)
    cdf = 0.5 * erfc(-_SQRT_HALF * x)
    pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return dy * (cdf + x * pdf)


# ------------------------------------------------------------------ softmax
def softmax(x, axis: int = -1):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (shifting by the max avoids overflow)."""
    xp = get_array_module(x)
    e = x - x.max(axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(dy, y, axis: int = -1):
    """Jacobian-vector product of softmax: ``y * (dy - sum(dy * y, axis))``."""
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


# --------------------------------------------------------------------- step
def step(x):
    """The perceptron's step function (book ch. 2/3): 1 where ``x > 0``, else 0, in ``x``'s dtype."""
    return (x > 0).astype(x.dtype)


def step_backward(dy, x):
    """The step function is flat wherever it is differentiable: the gradient is 0."""
    xp = get_array_module(dy)
    return xp.zeros(x.shape, dtype=dy.dtype)
