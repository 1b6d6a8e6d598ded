"""Read PyTorch checkpoints (``.pth`` / ``.pt`` / ``.bin``) without PyTorch.

A checkpoint is untrusted input, so the object pickle is read by the
restricted unpickler of ``core.torch_unpickler``, which imports and calls
nothing the file names.

Two container formats exist (``torch/serialization.py``):

* **zip** (PyTorch >= 1.6): ``<root>/data.pkl`` is the object pickle; each
  storage is the raw bytes of entry ``<root>/data/<key>``; ``<root>/byteorder``
  says ``little`` or ``big`` (absent in old files: little).
* **legacy** (< 1.6, or ``_use_new_zipfile_serialization=False``): five
  consecutive pickles -- magic number, protocol version (1001), system info
  (endianness), the object, then the sorted list of storage keys -- followed
  by each storage as an int64 element count and its raw bytes.

Tensors become NumPy arrays that honour offset, size and stride (copied,
C-contiguous); bfloat16 becomes float32. Nested checkpoints
(``{"state_dict": ...}``, ``{"model": ...}``), ``module.`` prefixes
(``DataParallel``) and key renaming are handled by
:func:`load_torch_state_dict` and the helpers of ``core.torch_state``
(re-exported here), which work on any name -> array dict.
"""
from __future__ import annotations

import io
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .serialization import CheckpointError
from .torch_state import STATE_DICT_KEYS, rename_keys, strip_prefixes, unwrap_state_dict  # noqa: F401  (re-exported)
from .torch_unpickler import _itemsize, _resolve, _storage_array, _unpickle

__all__ = [
    "TORCH_SUFFIXES", "load_torch_file", "load_torch_state_dict", "unwrap_state_dict",
    "strip_prefixes", "rename_keys", "is_torch_zip",
]

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001


def is_torch_zip(path) -> bool:
    """True when ``path`` is a zip archive holding a ``data.pkl`` (PyTorch >= 1.6 format)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_zip(path: Path):
    where = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{where}: truncated or corrupt zip checkpoint ({e})") from None
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise CheckpointError(f"{where}: expected one data.pkl in the zip archive, found {len(pkl)} "
                                  f"(entries: {', '.join(names[:8])})")
        root = pkl[0][:-len("data.pkl")]
        try:
            big_endian = False
            if root + "byteorder" in names:
                order = zf.read(root + "byteorder").decode("ascii", "replace").strip()
                if order not in ("little", "big"):
                    raise CheckpointError(f"{where}: unknown byteorder {order!r} (expected 'little' or 'big')")
                big_endian = order == "big"
            storages: dict = {}
            obj = _unpickle(io.BytesIO(zf.read(pkl[0])), f"{where} (data.pkl)", storages, legacy=False)
            for key, st in storages.items():
                entry = f"{root}data/{key}"
                if entry not in names:
                    raise CheckpointError(f"{where}: storage {key!r} is referenced but entry {entry!r} is missing")
                raw = zf.read(entry)
                need = st.numel * _itemsize(st.dtype)
                if len(raw) < need:
                    raise CheckpointError(f"{where}: storage {key!r} holds {len(raw)} bytes, its tensor "
                                          f"needs {need}")
                st.data = _storage_array(raw[:need], st.dtype, big_endian)
                st.big_endian = big_endian
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise CheckpointError(f"{where}: truncated or corrupt zip checkpoint ({type(e).__name__}: {e})") from None
    return _resolve(obj, where)


def _read_exact(f, n: int, where: str, what: str) -> bytearray:
    remaining = os.fstat(f.fileno()).st_size - f.tell()
    if n > remaining:  # check before allocating: a corrupt count must not exhaust memory
        raise CheckpointError(f"{where}: truncated file: {what} needs {n} bytes, only {max(remaining, 0)} remain")
    buf = bytearray(n)
    got = f.readinto(buf)
    if got != n:
        raise CheckpointError(f"{where}: truncated file: {what} needs {n} bytes, only {got} remain")
    return buf


def _load_legacy(path: Path):
    where = str(path)
    with open(path, "rb") as f:
        header = []
        for what in ("magic number", "protocol version", "system info"):
            # These three are plain values; the restricted unpickler rejects anything else.
            header.append(_unpickle(f, f"{where} ({what})", {}, legacy=True))
        magic, protocol, sys_info = header
        if magic != _LEGACY_MAGIC:
            raise CheckpointError(f"{where}: not a PyTorch checkpoint (legacy magic number {magic!r:.40} "
                                  f"!= {_LEGACY_MAGIC:#x})")
        if protocol != _LEGACY_PROTOCOL:
            raise CheckpointError(f"{where}: unsupported legacy protocol version {protocol!r} "
                                  f"(expected {_LEGACY_PROTOCOL})")
        if not isinstance(sys_info, dict):
            raise CheckpointError(f"{where}: corrupt system info record {sys_info!r:.80}")
        big_endian = not sys_info.get("little_endian", True)
        storages: dict = {}
        obj = _unpickle(f, f"{where} (object)", storages, legacy=True)
        keys = _unpickle(f, f"{where} (storage keys)", {}, legacy=True)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError(f"{where}: corrupt storage key list {keys!r:.80}")
        missing = set(storages) - set(keys)
        if missing:
            raise CheckpointError(f"{where}: storages {sorted(missing)[:5]} are referenced but not stored")
        for key in keys:
            st = storages.get(key)
            if st is None:
                raise CheckpointError(f"{where}: stored storage {key!r} is not referenced by the object")
            count = int.from_bytes(_read_exact(f, 8, where, f"the size of storage {key!r}"),
                                   "big" if big_endian else "little", signed=True)
            if count != st.numel:
                raise CheckpointError(f"{where}: storage {key!r} records {count} elements, the pickle says "
                                      f"{st.numel} (corrupt file)")
            raw = _read_exact(f, count * _itemsize(st.dtype), where, f"storage {key!r}")
            st.data = _storage_array(raw, st.dtype, big_endian)
            st.big_endian = big_endian
    return _resolve(obj, where)


def load_torch_file(path):
    """Load a whole ``torch.save`` file (zip or legacy format) as plain Python + NumPy.

    Tensors and parameters become NumPy arrays (bfloat16 -> float32); dicts,
    OrderedDicts, lists, tuples, numbers and strings come back as themselves.
    Anything else in the pickle (classes, functions, NumPy objects) is refused.

    Raises:
        CheckpointError: naming the file, for a forbidden global, a truncated or
            corrupt file, or a file that is not a PyTorch checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_torch_file: no such file {str(path)!r}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return _load_zip(path)
    if head[:1] == b"\x80":
        return _load_legacy(path)
    raise CheckpointError(f"{path}: not a PyTorch checkpoint: it starts with {head!r}, expected a zip archive "
                          "(b'PK') or a legacy pickle (b'\\x80')")


def load_torch_state_dict(path, key: str | None = None, prefixes=("module.",), rename=None) -> "OrderedDict[str, np.ndarray]":
    """Name -> array weights from a PyTorch checkpoint, ready for ``Module.load_state_dict``.

    Args:
        path: ``.pth`` / ``.pt`` / ``.bin`` file (zip or legacy format).
        key: where the weights sit in a nested checkpoint (see :func:`unwrap_state_dict`).
        prefixes: leading prefixes stripped when all keys carry them.
        rename: list of ``(regex, replacement)`` rules applied after stripping.
    """
    where = str(path)
    state = unwrap_state_dict(load_torch_file(path), key=key, where=where)
    state = strip_prefixes(state, prefixes)
    return rename_keys(state, rename, where) if rename else state
