"""Read PyTorch checkpoints (``.pth`` / ``.pt`` / ``.bin``) without PyTorch.

A checkpoint is untrusted input: ``torch.save`` writes a pickle, and a pickle
can name any importable function (``os.system``) and call it while loading.
This reader never imports or calls anything the file names. A restricted
``pickle.Unpickler`` maps the handful of globals a weights file needs to
local stand-ins (tensor/parameter rebuild functions, storage types, dtypes,
``OrderedDict``) and refuses every other global with a
:class:`~core.serialization.CheckpointError` naming it.

Two container formats exist (``torch/serialization.py``):

* **zip** (PyTorch >= 1.6): ``<root>/data.pkl`` is the object pickle; each
  storage is the raw bytes of entry ``<root>/data/<key>``; ``<root>/byteorder``
  says ``little`` or ``big`` (absent in old files: little).
* **legacy** (< 1.6, or ``_use_new_zipfile_serialization=False``): five
  consecutive pickles -- magic number, protocol version (1001), system info
  (endianness), the object, then the sorted list of storage keys -- followed
  by each storage as an int64 element count and its raw bytes.

Inside the object pickle a tensor is ``_rebuild_tensor_v2(storage, offset,
size, stride, ...)`` whose storage comes from a *persistent id*
``("storage", StorageType, key, location, numel)``. Tensors become NumPy arrays
that honour offset, size and stride (copied, C-contiguous); bfloat16 becomes
float32. Nested checkpoints (``{"state_dict": ...}``, ``{"model": ...}``),
``module.`` prefixes (``DataParallel``) and key renaming are handled by
:func:`load_torch_state_dict` and the helpers below, which work on any
name -> array dict.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .serialization import CheckpointError

__all__ = [
    "TORCH_SUFFIXES", "load_torch_file", "load_torch_state_dict", "unwrap_state_dict",
    "strip_prefixes", "rename_keys", "is_torch_zip",
]

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001
#: Keys that commonly wrap the weights inside a training checkpoint, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights", "params")

# Storage class name -> NumPy dtype ("bfloat16" is read as uint16 and widened).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": "bfloat16", "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"), "ComplexFloatStorage": np.dtype("<c8"),
    "ComplexDoubleStorage": np.dtype("<c16"), "UntypedStorage": np.dtype("u1"),
}
# torch dtype name -> NumPy dtype, for _rebuild_tensor_v3 (which names the dtype explicitly).
_TORCH_DTYPES = {
    "float32": np.dtype("<f4"), "float": np.dtype("<f4"), "float64": np.dtype("<f8"), "double": np.dtype("<f8"),
    "float16": np.dtype("<f2"), "half": np.dtype("<f2"), "bfloat16": "bfloat16",
    "int64": np.dtype("<i8"), "long": np.dtype("<i8"), "int32": np.dtype("<i4"), "int": np.dtype("<i4"),
    "int16": np.dtype("<i2"), "short": np.dtype("<i2"), "int8": np.dtype("i1"), "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"), "uint32": np.dtype("<u4"), "uint64": np.dtype("<u8"), "bool": np.dtype("?"),
    "complex64": np.dtype("<c8"), "complex128": np.dtype("<c16"),
}


def _itemsize(dtype) -> int:
    return 2 if dtype == "bfloat16" else dtype.itemsize


# ------------------------------------------------------------------ stand-ins
class _StorageType:
    """What ``GLOBAL torch.FloatStorage`` resolves to: a name and a dtype, nothing callable."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _DType:
    """What ``GLOBAL torch.float32`` resolves to (used by ``_rebuild_tensor_v3``)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _Storage:
    """A storage named by a persistent id; ``data`` (1-D array of ``dtype``) is filled in later.

    In the legacy format the bytes follow the object pickle, so tensors are
    rebuilt lazily (``_PendingTensor``) and resolved once every storage is read.
    """

    __slots__ = ("key", "dtype", "numel", "data", "big_endian")

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.data, self.big_endian = key, dtype, numel, None, False

    def __setstate__(self, state):
        raise pickle.UnpicklingError("BUILD on a storage is not allowed")


class _PendingTensor:
    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage, offset, size, stride, dtype=None):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, expected a storage "
                                         "persistent id")
        for name, value in (("size", size), ("stride", stride)):
            if not isinstance(value, (tuple, list)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
                raise pickle.UnpicklingError(f"tensor {name} must be a tuple of non-negative ints, got {value!r}")
        if len(size) != len(stride):
            raise pickle.UnpicklingError(f"tensor size {size!r} and stride {stride!r} differ in length")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise pickle.UnpicklingError(f"tensor storage offset must be a non-negative int, got {offset!r}")
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)
        self.dtype = storage.dtype if dtype is None else dtype

    def __setstate__(self, state):
        raise pickle.UnpicklingError("BUILD on a tensor is not allowed")


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # unused: requires_grad, backward_hooks (an OrderedDict) and, in newer files, metadata.
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *unused):
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v3: dtype must be a torch dtype, got {dtype!r}")
    if not isinstance(storage, _Storage) or storage.dtype != np.dtype("u1"):
        raise pickle.UnpicklingError("_rebuild_tensor_v3 expects an untyped (byte) storage")
    return _PendingTensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, *unused):
    # unused: requires_grad, backward_hooks and, for _rebuild_parameter_with_state, the state dict.
    if not isinstance(data, _PendingTensor):
        raise pickle.UnpicklingError(f"parameter rebuilt from {type(data).__name__}, expected a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensor subclasses (and tensors carrying Python attributes) pickle through this wrapper;
    # func is itself one of the rebuild stand-ins (find_class let nothing else through).
    if func not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter) or not isinstance(args, tuple):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 may only wrap a tensor rebuild function")
    return func(*args)


def _as_tuple(values):
    return tuple(values)


def _device(*args):
    return ":".join(str(a) for a in args)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): _as_tuple,
    ("torch", "device"): _device,
    # Protocol-2 pickles spell a bytes object as _codecs.encode(text, "latin1"): harmless.
    ("_codecs", "encode"): lambda text, encoding="utf-8": str(text).encode(str(encoding)),
    ("torch", "Tensor"): object(),  # only ever an argument of _rebuild_from_type_v2
    ("torch.nn.parameter", "Parameter"): object(),
}
_SAFE_GLOBALS.update({("torch", n): _StorageType(n, d) for n, d in _STORAGE_DTYPES.items()})
_SAFE_GLOBALS[("torch.storage", "UntypedStorage")] = _SAFE_GLOBALS[("torch", "UntypedStorage")]
_SAFE_GLOBALS.update({("torch", n): _DType(n, d) for n, d in _TORCH_DTYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only ``_SAFE_GLOBALS``; persistent ids become ``_Storage`` records."""

    def __init__(self, file, where: str, storages: dict, legacy: bool):
        super().__init__(file)
        self._where, self._storages, self._legacy = where, storages, legacy

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._where}: the pickle asks for the global {module}.{name}, which a weights file never "
                "needs; refusing to load it (only tensors, storages and (Ordered)dicts are rebuilt, nothing "
                "named in the file is imported or called)"
            ) from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.100}")
        storage_type, key, _location, numel = pid[1:5]
        if isinstance(storage_type, _DType):  # some writers record the dtype instead of a class
            dtype = storage_type.dtype
        elif isinstance(storage_type, _StorageType):
            dtype = storage_type.dtype
        else:
            raise pickle.UnpicklingError(f"persistent id names {storage_type!r:.60}, not a storage type")
        if self._legacy and len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (PyTorch < 0.4 checkpoints) are not supported")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise pickle.UnpicklingError(f"storage {key!r} has an invalid element count {numel!r}")
        key = str(key)
        known = self._storages.get(key)
        if known is None:
            known = self._storages[key] = _Storage(key, dtype, numel)
        elif known.dtype != dtype or known.numel != numel:
            raise pickle.UnpicklingError(f"storage {key!r} is described twice with different types or sizes")
        return known


# --------------------------------------------------------------- materialise
def _storage_array(raw: bytes | bytearray, dtype, big_endian: bool):
    if dtype == "bfloat16":
        u16 = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (u16 << 16).view(np.float32)  # bfloat16 is the top half of a float32
    dt = dtype.newbyteorder(">") if big_endian and dtype.itemsize > 1 else dtype
    arr = np.frombuffer(raw, dtype=dt)
    return arr.astype(dtype.newbyteorder("=")) if big_endian and dtype.itemsize > 1 else arr


def _tensor_array(t: _PendingTensor, where: str):
    data = t.storage.data
    dtype = t.dtype
    if data is None:
        raise CheckpointError(f"{where}: storage {t.storage.key!r} is referenced but its data is missing")
    if t.dtype is not t.storage.dtype:  # _rebuild_tensor_v3: reinterpret the untyped bytes
        usable = data.size - data.size % _itemsize(dtype)
        data = _storage_array(data[:usable].tobytes(), dtype, t.storage.big_endian)
    out_dtype = np.dtype(np.float32) if dtype == "bfloat16" else np.dtype(dtype).newbyteorder("=")
    if 0 in t.size:
        return np.zeros(t.size, dtype=out_dtype)
    extent = t.offset + sum((s - 1) * st for s, st in zip(t.size, t.stride)) + 1
    if extent > data.size:
        raise CheckpointError(
            f"{where}: tensor of size {t.size} with stride {t.stride} at offset {t.offset} needs {extent} "
            f"elements of storage {t.storage.key!r}, which holds {data.size}"
        )
    view = np.lib.stride_tricks.as_strided(
        data[t.offset:], shape=t.size, strides=tuple(s * data.itemsize for s in t.stride), writeable=False)
    return np.array(view, dtype=out_dtype, order="C", copy=True)


def _resolve(obj, where: str):
    """Replace every pending tensor in a nest of dicts/lists/tuples by its array."""
    if isinstance(obj, _PendingTensor):
        return _tensor_array(obj, where)
    if isinstance(obj, _Storage):
        raise CheckpointError(f"{where}: a bare storage (not a tensor) is not supported")
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, OrderedDict) else dict()
        for k, v in obj.items():
            out[k] = _resolve(v, where)
        return out
    if isinstance(obj, list):
        return [_resolve(v, where) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, where) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return obj
    return obj


def _unpickle(data, where: str, storages: dict, legacy: bool):
    try:
        return _RestrictedUnpickler(data, where, storages, legacy).load()
    except CheckpointError:
        raise
    except EOFError:
        raise CheckpointError(f"{where}: the pickle ends early (truncated file)") from None
    except RecursionError:
        raise CheckpointError(f"{where}: the pickle is nested too deeply") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise CheckpointError(f"{where}: corrupt pickle ({type(e).__name__}: {e})") from None


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


# ------------------------------------------------------------ state dict tools
def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def unwrap_state_dict(obj, key: str | None = None, where: str = "checkpoint") -> "OrderedDict[str, np.ndarray]":
    """Find the name -> array dict inside a loaded checkpoint.

    Args:
        obj: what :func:`load_torch_file` (or another loader) returned.
        key: dotted path to the weights (``"model"``, ``"state_dict"``,
            ``"ema.model"``); by default ``obj`` itself when it is a flat dict of
            arrays, else the first of ``STATE_DICT_KEYS`` that holds one (searched
            recursively, so ``{"model": {"state_dict": ...}}`` works).
        where: file name for error messages.

    Non-array entries of a dict that holds weights (a stray ``epoch`` counter)
    are dropped.
    """
    if key is not None:
        node = obj
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                have = ", ".join(map(str, node.keys())) if isinstance(node, dict) else type(node).__name__
                raise CheckpointError(f"{where}: no entry {part!r} on the path {key!r} (found: {have})")
            node = node[part]
        found = node
    else:
        found = _search_state_dict(obj, depth=0)
    if not isinstance(found, dict) or not any(isinstance(v, np.ndarray) for v in found.values()):
        top = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:12]) \
            if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{where}: no dict of weight arrays found (top level: {top}); pass key= naming "
                              f"the entry that holds them")
    return OrderedDict((str(k), v) for k, v in found.items() if isinstance(v, np.ndarray))


def _search_state_dict(obj, depth: int):
    if _is_state_dict(obj):
        return obj
    if not isinstance(obj, dict) or depth > 3:
        return None
    for k in STATE_DICT_KEYS:
        if k in obj:
            hit = _search_state_dict(obj[k], depth + 1)
            if hit is not None:
                return hit
    # A flat dict of arrays with a few scalars mixed in still counts.
    if any(isinstance(v, np.ndarray) for v in obj.values()) and all(isinstance(k, str) for k in obj):
        return obj
    return None


def strip_prefixes(state: dict, prefixes=("module.",)) -> "OrderedDict[str, np.ndarray]":
    """Remove a leading prefix (``module.`` from ``DataParallel``) when *every* key carries it.

    Each prefix is tried in turn and may apply repeatedly (``module.module.``).
    """
    out = OrderedDict(state)
    for prefix in prefixes:
        while out and prefix and all(k.startswith(prefix) for k in out):
            out = OrderedDict((k[len(prefix):], v) for k, v in out.items())
    return out


def rename_keys(state: dict, rules, where: str = "checkpoint") -> "OrderedDict[str, np.ndarray]":
    """Apply ``(regex, replacement)`` rules, in order, to every key (``re.sub`` semantics).

    Example: ``[(r"^backbone\\.", ""), (r"\\.gamma$", ".weight")]``. Two keys
    that end up equal raise :class:`CheckpointError` naming both.
    """
    compiled = []
    for rule in rules or ():
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and all(isinstance(r, str) for r in rule)):
            raise TypeError(f"rename_keys: each rule must be a (regex, replacement) pair of str, got {rule!r}")
        try:
            compiled.append((re.compile(rule[0]), rule[1]))
        except re.error as e:
            raise ValueError(f"rename_keys: invalid regex {rule[0]!r}: {e}") from None
    out, origin = OrderedDict(), {}
    for k, v in state.items():
        new = k
        for pattern, repl in compiled:
            new = pattern.sub(repl, new)
        if new in out:
            raise CheckpointError(f"{where}: renaming maps both {origin[new]!r} and {k!r} to {new!r}")
        out[new], origin[new] = v, k
    return out


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
