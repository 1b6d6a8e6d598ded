"""Parameters and gradients that lie back to back in one buffer.

An optimizer step is a dozen elementwise passes. Over a few large arrays the
passes cost what the bytes cost; over many small ones (a network's biases,
the layers of a small MLP) the ~1 us each NumPy call costs dominates. When a
model's parameter values, or its gradients, are views tiling one contiguous
buffer, each pass can be a single call over that buffer:

- :func:`flatten_parameters` moves parameter values into one buffer (what
  PyTorch's ``flatten_parameters`` does for RNN weights);
- :func:`joined_view` recognises arrays that already tile one buffer, such as
  the gradient views :class:`rl.fused_mlp.FusedMLP` writes.

Views stay views only while nobody replaces the arrays: ``load_state_dict``
assigns new ones, after which :func:`joined_view` returns ``None`` and the
optimizer falls back to one call per parameter (call ``flatten_parameters``
again to regain the single pass).
"""
from __future__ import annotations

import numpy as np


def _root(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def joined_view(arrays) -> np.ndarray | None:
    """The 1-D array that ``arrays`` tile, in order and without gaps, or ``None``.

    Every array must be a C-contiguous NumPy view of one common base, all of one
    dtype, each starting where the previous one ends. The result is a view:
    writing to it writes to the arrays.
    """
    arrays = list(arrays)
    if not arrays or not all(type(a) is np.ndarray for a in arrays):
        return None
    first = arrays[0]
    root = _root(first)
    if not root.flags.c_contiguous or root.dtype != first.dtype:
        return None
    start = pos = _address(first)
    for a in arrays:
        if (a.dtype != first.dtype or not a.flags.c_contiguous or _address(a) != pos
                or _root(a) is not root):
            return None
        pos += a.nbytes
    offset = (start - _address(root)) // root.itemsize
    return root.reshape(-1)[offset:offset + (pos - start) // root.itemsize]


def flatten_parameters(params) -> np.ndarray:
    """Copy the values of ``params`` into one contiguous buffer; each ``p.data`` becomes a view of it.

    Args:
        params: an iterable of :class:`core.module.Parameter` whose ``data`` are NumPy arrays
            of one floating dtype.

    Returns the ``(total,)`` buffer (``joined_view`` of the new ``data`` arrays).
    Values are unchanged. Raises ``ValueError`` for mixed dtypes or non-NumPy arrays.
    """
    params = list(params)
    if not params:
        raise ValueError("flatten_parameters: got no parameters")
    dtypes = {p.data.dtype for p in params}
    if len(dtypes) != 1 or not all(isinstance(p.data, np.ndarray) for p in params):
        raise ValueError(f"flatten_parameters: parameters must be NumPy arrays of one dtype, got "
                         f"{sorted(str(d) for d in dtypes)}")
    flat = np.empty(sum(p.data.size for p in params), dtype=dtypes.pop())
    pos = 0
    for p in params:
        n = p.data.size
        view = flat[pos:pos + n].reshape(p.data.shape)
        view[...] = p.data
        p.data = view
        pos += n
    return flat
