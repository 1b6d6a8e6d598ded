"""Weight initialisers.

Every initialiser has the form ``init(shape, rng=None, ..., dtype=float32) -> array``
and draws only from the ``numpy.random.Generator`` it is given (or builds one
from a seed). Fans follow PyTorch's convention: a weight ``(out, in)`` has
``fan_in = in``; a convolution weight ``(out, in, kh, kw)`` has
``fan_in = in * kh * kw`` and ``fan_out = out * kh * kw``.

Which scale suits which activation (the book, ch. 6.2):

* ``he_normal`` / ``he_uniform``: variance ``2 / fan_in`` keeps the activation
  variance constant through ReLU layers (He et al. 2015, "Delving deep into
  rectifiers").
* ``xavier_normal`` / ``xavier_uniform``: variance ``2 / (fan_in + fan_out)``
  (Glorot & Bengio 2010) for sigmoid/tanh nets, as in PyTorch.
* ``lecun_normal``: variance ``1 / fan_in``, which is what the book calls the
  "Xavier initial value".
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .backend import DEFAULT_DTYPE, as_generator, check_float_dtype

__all__ = [
    "fan_in_fan_out", "he_normal", "he_uniform", "xavier_normal", "xavier_uniform",
    "lecun_normal", "normal", "uniform", "zeros", "ones", "get_initializer", "INITIALIZERS",
]


def _shape(shape, where: str) -> tuple:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{where}: shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: shape must not have negative sizes, got {shape}")
    return shape


def fan_in_fan_out(shape) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of ``shape``.

    ``(n,)`` -> ``(n, n)``; ``(out, in)`` -> ``(in, out)``;
    ``(out, in, *kernel)`` -> ``(in * prod(kernel), out * prod(kernel))``.
    """
    shape = _shape(shape, "fan_in_fan_out")
    if len(shape) == 0:
        raise ValueError("fan_in_fan_out: a scalar shape () has no fans; expected at least 1 dimension")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(value, default: int, name: str, where: str) -> int:
    fan = default if value is None else int(value)
    if fan <= 0:
        raise ValueError(f"{where}: {name} must be positive, got {fan}")
    return fan


def normal(shape, std: float = 0.01, rng=None, mean: float = 0.0, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """Gaussian ``N(mean, std^2)`` of ``shape`` (the book's ``weight_init_std * randn``)."""
    shape = _shape(shape, "normal")
    dtype = check_float_dtype(dtype, "normal")
    if std < 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    out = as_generator(rng).standard_normal(shape)
    out *= std
    out += mean
    return out.astype(dtype, copy=False)


def uniform(shape, low: float = -0.05, high: float = 0.05, rng=None, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """Uniform ``U(low, high)`` of ``shape``."""
    shape = _shape(shape, "uniform")
    dtype = check_float_dtype(dtype, "uniform")
    if not high >= low:
        raise ValueError(f"uniform: expected low <= high, got low={low}, high={high}")
    return as_generator(rng).uniform(low, high, size=shape).astype(dtype, copy=False)


def he_normal(shape, rng=None, fan_in: int | None = None, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """``N(0, 2 / fan_in)`` (He et al. 2015), for layers followed by ReLU."""
    shape = _shape(shape, "he_normal")
    fan = _fan(fan_in, fan_in_fan_out(shape)[0], "fan_in", "he_normal")
    return normal(shape, math.sqrt(2.0 / fan), rng, dtype=dtype)


def he_uniform(shape, rng=None, fan_in: int | None = None, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """``U(-b, b)`` with ``b = sqrt(6 / fan_in)``: the same variance ``2 / fan_in`` as ``he_normal``."""
    shape = _shape(shape, "he_uniform")
    fan = _fan(fan_in, fan_in_fan_out(shape)[0], "fan_in", "he_uniform")
    bound = math.sqrt(6.0 / fan)
    return uniform(shape, -bound, bound, rng, dtype=dtype)


def lecun_normal(shape, rng=None, fan_in: int | None = None, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """``N(0, 1 / fan_in)``: the book's "Xavier" scale ``1 / sqrt(n)``."""
    shape = _shape(shape, "lecun_normal")
    fan = _fan(fan_in, fan_in_fan_out(shape)[0], "fan_in", "lecun_normal")
    return normal(shape, math.sqrt(1.0 / fan), rng, dtype=dtype)


def xavier_normal(shape, rng=None, gain: float = 1.0, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """``N(0, gain^2 * 2 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    shape = _shape(shape, "xavier_normal")
    fan_in, fan_out = fan_in_fan_out(shape)
    std = gain * math.sqrt(2.0 / _fan(fan_in + fan_out, 0, "fan_in + fan_out", "xavier_normal"))
    return normal(shape, std, rng, dtype=dtype)


def xavier_uniform(shape, rng=None, gain: float = 1.0, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """``U(-b, b)`` with ``b = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    shape = _shape(shape, "xavier_uniform")
    fan_in, fan_out = fan_in_fan_out(shape)
    bound = gain * math.sqrt(6.0 / _fan(fan_in + fan_out, 0, "fan_in + fan_out", "xavier_uniform"))
    return uniform(shape, -bound, bound, rng, dtype=dtype)


def zeros(shape, rng=None, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """All zeros (``rng`` is accepted for a uniform signature and unused)."""
    return np.zeros(_shape(shape, "zeros"), dtype=check_float_dtype(dtype, "zeros"))


def ones(shape, rng=None, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """All ones (``rng`` is accepted for a uniform signature and unused)."""
    return np.ones(_shape(shape, "ones"), dtype=check_float_dtype(dtype, "ones"))


#: Names accepted by ``get_initializer`` (aliases map to the same function).
INITIALIZERS: dict[str, Callable] = {
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "relu": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "lecun_normal": lecun_normal,
    "normal": normal,  # std 0.01, the book's weight_init_std
    "zeros": zeros,
    "ones": ones,
}


def get_initializer(init) -> Callable:
    """Resolve ``init`` to a callable used as ``f(shape, rng=rng, dtype=dtype) -> array``.

    ``init`` may be a name from ``INITIALIZERS`` (e.g. ``"he_normal"``), a
    positive number (a Gaussian with that standard deviation, like the book's
    ``weight_init_std=0.01``) or a callable with that signature (returned as is).
    """
    if callable(init):
        return init
    if isinstance(init, bool):
        raise TypeError("get_initializer: init must be a name, a std (float) or a callable, got bool")
    if isinstance(init, (int, float, np.integer, np.floating)):
        std = float(init)
        if not std > 0:
            raise ValueError(f"get_initializer: a numeric init is a std and must be > 0, got {init}")

        def scaled_normal(shape, rng=None, dtype=DEFAULT_DTYPE):
            return normal(shape, std, rng, dtype=dtype)

        scaled_normal.__name__ = f"normal(std={std:g})"
        return scaled_normal
    if isinstance(init, str):
        key = init.lower()
        if key in INITIALIZERS:
            return INITIALIZERS[key]
        raise ValueError(
            f"get_initializer: unknown init {init!r}; expected one of {sorted(INITIALIZERS)}, "
            "a std (float) or a callable"
        )
    raise TypeError(f"get_initializer: init must be a name, a std (float) or a callable, got {type(init).__name__}")
