"""The one place that decides which array module (NumPy or CuPy) computes.

Kernels call ``xp = get_array_module(x)`` and write their math once against
``xp``; there are no ``_cpu``/``_gpu`` twins anywhere in zerodl.
"""
from __future__ import annotations

import numpy as np

DEFAULT_DTYPE = np.float32

try:  # CuPy is optional and never required; NumPy is the engine.
    import cupy as _cupy  # type: ignore
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def cupy_available() -> bool:
    """True when CuPy imported and can be selected as a backend."""
    return _cupy is not None


def to_numpy(x):
    """Return ``x`` as a NumPy array (copying from the GPU when needed)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def as_generator(rng=None) -> np.random.Generator:
    """Turn a seed, ``None`` or a Generator into a ``numpy.random.Generator``.

    zerodl never touches the global ``np.random`` state; every random choice
    flows from a Generator passed in (or built from a seed here).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    )


def check_float_dtype(dtype, where: str) -> np.dtype:
    """Validate that ``dtype`` is a floating dtype; ``where`` names the caller."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"{where}: expected a floating dtype (float16/32/64), got {dt}")
    return dt
