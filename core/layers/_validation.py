"""Input checks shared by the layers: cheap, and with messages that name the layer."""
from __future__ import annotations

from ..backend import get_array_module


def float_input(x, where: str, dtype=None):
    """Return ``x`` as a floating array, cast to ``dtype`` when given and different.

    Raises ``TypeError`` naming ``where`` for integer/bool/complex/object input:
    silently computing in float64 from integers would hide a preprocessing bug.
    """
    if not hasattr(x, "dtype"):
        x = get_array_module(x).asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: expected a floating-point input array, got dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    return x


def require_forward(cache, where: str):
    """Raise a clear error when ``backward`` runs before any ``forward``."""
    if cache is None:
        raise RuntimeError(f"{where}: backward() called before forward()")
    return cache
