"""The restricted unpickler that rebuilds PyTorch tensors as NumPy arrays, without PyTorch.

A checkpoint is untrusted input: ``torch.save`` writes a pickle, and a pickle
can name any importable function (``os.system``) and call it while loading.
This reader never imports or calls anything the file names. A restricted
``pickle.Unpickler`` maps the handful of globals a weights file needs to
local stand-ins (tensor/parameter rebuild functions, storage types, dtypes,
``OrderedDict``) and refuses every other global with a
:class:`~core.serialization.CheckpointError` naming it.

Inside the object pickle a tensor is ``_rebuild_tensor_v2(storage, offset,
size, stride, ...)`` whose storage comes from a *persistent id*
``("storage", StorageType, key, location, numel)``. Unpickling yields pending
tensors; once a container reader (``core.torch_pickle``) has filled in every
storage's bytes, :func:`_resolve` turns them into NumPy arrays that honour
offset, size and stride (copied, C-contiguous); bfloat16 becomes float32.
"""
from __future__ import annotations

import collections
import pickle
from collections import OrderedDict

import numpy as np

from .serialization import CheckpointError

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

