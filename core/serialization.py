"""Saving and loading: atomic writes, ``.npz``, ``.safetensors``, weights and full checkpoints.

* Every write goes to a temp file in the target's folder, is fsynced and then
  ``os.replace``-d onto the target, so a crash or an exception mid-write
  leaves the previous file intact (and no temp file behind).
* Nothing is unpickled: ``.npz`` members are read with ``allow_pickle=False``
  and safetensors is parsed by :mod:`core.safetensors_io`.
* A checkpoint holds nested state (model / optimizer / schedule state dicts,
  RNG states, counters, JSON-able extras). Arrays are stored as entries with
  dotted names (``optimizer.state.0.exp_avg``); a JSON "structure" entry
  records the nesting and the exact Python types (int vs float, tuple vs list,
  int dict keys, None), so :func:`load_checkpoint` rebuilds the same objects.
* Problems reading a file raise :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .safetensors_io import SafetensorsError, read_safetensors, write_safetensors

__all__ = [
    "CheckpointError", "atomic_path", "atomic_open", "atomic_write_bytes",
    "save_npz", "load_npz", "save_safetensors", "load_safetensors", "load_arrays",
    "save_weights", "load_weights", "save_checkpoint", "load_checkpoint", "restore_rng",
]

WEIGHT_SUFFIXES = (".npz", ".safetensors")
_NPZ_METADATA_KEY = "__metadata__"
_CHECKPOINT_FORMAT = "zerodl.checkpoint"
_CHECKPOINT_VERSION = 1
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class CheckpointError(ValueError):
    """A file could not be read as weights or a checkpoint; the message names the file."""


# ------------------------------------------------------------------ atomic writes
def _new_file_mode(path: Path) -> int:
    """Mode for the replacement: the old file's, else 0o666 minus the umask (what open() gives)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    try:  # Linux exposes the umask without the racy set-and-restore dance.
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_path(path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms cannot open folders; the data itself is synced
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path next to ``path``; on success fsync it and rename it onto ``path``.

    If the body raises, the temp file is removed and ``path`` is untouched.
    Missing parent folders are created (a run folder's first file creates it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _fsync_path(tmp)
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_path(path.parent, directory=True)


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", **kwargs):
    """``open(path, mode)`` that only replaces ``path`` when the body finishes without error."""
    if not any(c in mode for c in "wx") or "+" in mode:
        raise ValueError(f"atomic_open: mode must be a write mode like 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def atomic_write_bytes(path, data) -> None:
    """Atomically replace ``path`` with ``data`` (bytes-like)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


# ------------------------------------------------------------------------- npz
def _as_arrays(arrays, where: str) -> dict:
    if not hasattr(arrays, "items"):
        raise TypeError(f"{where}: arrays must be a dict of name -> array, got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where}: array names must be non-empty str, got {name!r}")
        arr = np.asarray(to_numpy(value))
        if arr.dtype.hasobject:
            raise TypeError(f"{where}: array {name!r} has dtype object; only numeric, bool and "
                            "string arrays can be stored (nothing is pickled)")
        out[name] = arr
    return out


def save_npz(path, arrays, metadata: dict | None = None, compress: bool = False) -> None:
    """Atomically write ``arrays`` (name -> array) and JSON-able ``metadata`` to an ``.npz`` file.

    The metadata is stored as a JSON string under ``"__metadata__"``; the file
    is a normal NumPy archive that ``numpy.load`` reads.
    """
    arrays = _as_arrays(arrays, "save_npz")
    if _NPZ_METADATA_KEY in arrays:
        raise ValueError(f"save_npz: {_NPZ_METADATA_KEY!r} is reserved for metadata and cannot name an array")
    if metadata is not None:
        try:
            text = json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"save_npz: metadata must be JSON-serialisable ({e})") from None
        arrays[_NPZ_METADATA_KEY] = np.array(text)
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", compression=compression, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def load_npz(path) -> tuple[dict, dict]:
    """Read ``(arrays, metadata)`` from an ``.npz`` file (metadata ``{}`` when there is none).

    Raises :class:`CheckpointError` for a file that is not a zip archive, is
    truncated, fails its CRC, or whose array headers disagree with their data.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CheckpointError(f"{path}: not an .npz (zip) file; it starts with {head!r}")
    arrays, metadata = {}, {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with zf.open(info) as member:
                    arr = np.lib.format.read_array(member, allow_pickle=False)
                    if member.read(1):
                        raise CheckpointError(f"{path}: entry {name!r}: array header says {arr.nbytes} "
                                              f"data bytes but the entry holds more")
                if name == _NPZ_METADATA_KEY:
                    metadata = json.loads(str(arr[()]))
                else:
                    arrays[name] = arr
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt .npz file ({type(e).__name__}: {e})") from None
    return arrays, metadata


# ----------------------------------------------------------------- safetensors
def save_safetensors(path, arrays, metadata: dict | None = None) -> None:
    """Atomically write ``arrays`` as a ``.safetensors`` file with optional str->str ``metadata``."""
    arrays = _as_arrays(arrays, "save_safetensors")
    with atomic_open(path, "wb") as f:
        write_safetensors(f, arrays, metadata)


def load_safetensors(path) -> tuple[dict, dict]:
    """Read ``(arrays, metadata)`` from a ``.safetensors`` file; BF16 tensors come back float32."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return read_safetensors(f)
    except SafetensorsError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _format_of(path: Path, where: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"{where}: cannot tell the format of {path.name!r} from its suffix "
                         f"{suffix or '(none)'!r}; supported: {', '.join(WEIGHT_SUFFIXES)}")
    return suffix[1:]


def load_arrays(path) -> tuple[dict, dict]:
    """``(arrays, metadata)`` from an ``.npz`` or ``.safetensors`` file, chosen by suffix."""
    path = Path(path)
    fmt = _format_of(path, "load_arrays")
    return load_npz(path) if fmt == "npz" else load_safetensors(path)


# --------------------------------------------------------------------- weights
def save_weights(module, path, metadata: dict | None = None) -> None:
    """Atomically write ``module.state_dict()`` (or a name -> array dict) to ``.npz`` / ``.safetensors``.

    The module is not changed (arrays are copied to host memory when needed).
    ``metadata`` is a dict of str -> str (stored in both formats).
    """
    path = Path(path)
    fmt = _format_of(path, "save_weights")
    state = module.state_dict() if hasattr(module, "state_dict") else module
    if fmt == "npz":
        save_npz(path, state, metadata)
    else:
        save_safetensors(path, state, metadata)


def load_weights(module, path, strict: bool = True):
    """Load an ``.npz`` / ``.safetensors`` weights file into ``module``.

    A zerodl checkpoint (from :func:`save_checkpoint`) also works: its model
    part is used. Returns ``module.load_state_dict``'s result (missing and
    unexpected keys when ``strict=False``); key or shape mismatches raise
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    arrays, metadata = load_arrays(path)
    if isinstance(metadata, dict) and metadata.get("format") == _CHECKPOINT_FORMAT:
        state = _decode_checkpoint(path, arrays, metadata).get("model")
        if state is None:
            raise CheckpointError(f"{path}: checkpoint holds no model state")
    else:
        state = arrays
    try:
        return module.load_state_dict(state, strict=strict)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


# ----------------------------------------------------------------- checkpoints
class _Encoder:
    """Turn nested state into (JSON structure, flat name -> array dict); see the module docstring.

    JSON scalars (None, bool, int, finite float, str) and lists stay as they
    are; everything else becomes a tagged object ``{"t": tag, ...}``.
    """

    def __init__(self):
        self.arrays: dict = {}

    def _key(self, path: str) -> str:
        key, n = path, 0
        while key in self.arrays:  # e.g. a name containing dots that collides with a nested one
            n += 1
            key = f"{path}~{n}"
        return key

    def _store(self, path: str, arr) -> str:
        key = self._key(path or "value")
        self.arrays[key] = arr
        return key

    def encode(self, obj, path: str):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.generic):
            if isinstance(obj, (np.bool_, np.integer)) or (isinstance(obj, np.floating) and obj.itemsize <= 8):
                return {"t": "scalar", "dtype": obj.dtype.str, "v": self.encode(obj.item(), path)}
            return {"t": "array", "k": self._store(path, np.asarray(obj)), "scalar": True}
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"t": "float", "v": repr(float(obj))}
        if isinstance(obj, (bytes, bytearray)):
            return {"t": "bytes", "k": self._store(path, np.frombuffer(bytes(obj), dtype=np.uint8).copy())}
        if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
            arr = np.asarray(to_numpy(obj))
            if arr.dtype.hasobject:
                raise TypeError(f"save_checkpoint: {path} is an object array; nothing is pickled")
            return {"t": "array", "k": self._store(path, arr)}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"t": "tuple", "v": [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, np.integer):
                    k = int(k)
                if not (k is None or isinstance(k, (str, int, bool))
                        or (isinstance(k, float) and math.isfinite(k))):
                    raise TypeError(f"save_checkpoint: {path or 'value'} has a key {k!r} of type "
                                    f"{type(k).__name__}; keys must be str, int, bool, finite float or None")
                items.append([k, self.encode(v, f"{path}.{k}" if path else str(k))])
            return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "v": items}
        raise TypeError(f"save_checkpoint: {path or 'value'} is a {type(obj).__name__}; expected an array, "
                        "number, str, bytes, bool, None, list, tuple or dict")


def _decode(node, arrays: dict, where: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays, where) for v in node]
    if not isinstance(node, dict) or "t" not in node:
        raise CheckpointError(f"{where}: malformed structure node {node!r:.80}")
    tag = node["t"]
    if tag in ("array", "bytes"):
        key = node.get("k")
        if key not in arrays:
            raise CheckpointError(f"{where}: missing array entry {key!r}")
        arr = arrays[key]
        if tag == "bytes":
            return arr.tobytes()
        return arr[()] if node.get("scalar") else arr
    if tag == "scalar":
        return np.dtype(node["dtype"]).type(_decode(node["v"], arrays, where))
    if tag == "float":
        return float(node["v"])
    if tag == "tuple":
        return tuple(_decode(v, arrays, where) for v in node["v"])
    if tag in ("dict", "odict"):
        cls = OrderedDict if tag == "odict" else dict
        return cls((k, _decode(v, arrays, where)) for k, v in node["v"])
    raise CheckpointError(f"{where}: unknown structure tag {tag!r}")


def _state_of(obj):
    return obj.state_dict() if hasattr(obj, "state_dict") and callable(obj.state_dict) else obj


def _rng_state(rng):
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    if isinstance(rng, np.random.BitGenerator):
        return rng.state
    if isinstance(rng, dict) and "bit_generator" not in rng:  # name -> Generator
        return {k: _rng_state(v) for k, v in rng.items()}
    return rng


def save_checkpoint(path, *, model=None, optimizer=None, schedule=None, rng=None, extra=None,
                    format: str | None = None, **entries) -> None:
    """Atomically write full training state to ``path``.

    Args:
        model, optimizer, schedule: objects with ``state_dict()`` (or their state dicts).
        rng: a ``numpy.random.Generator`` (its ``bit_generator.state`` is saved;
            see :func:`restore_rng`), a state dict, or a dict of name -> Generator.
        extra: any JSON-like value (dicts, lists, numbers, str, None; arrays allowed).
        entries: more named parts, e.g. ``epoch=3, step=1200, replay=arrays``.
        format: ``"npz"`` or ``"safetensors"``; by default ``.safetensors``
            paths get safetensors and every other path gets ``.npz``.
    """
    path = Path(path)
    fmt = format or ("safetensors" if path.suffix.lower() == ".safetensors" else "npz")
    if fmt not in ("npz", "safetensors"):
        raise ValueError(f"save_checkpoint: format must be 'npz' or 'safetensors', got {format!r}")
    parts = {}
    for name, value in (("model", model), ("optimizer", optimizer), ("schedule", schedule)):
        if value is not None:
            parts[name] = _state_of(value)
    if rng is not None:
        parts["rng"] = _rng_state(rng)
    if extra is not None:
        parts["extra"] = extra
    parts.update(entries)
    encoder = _Encoder()
    structure = encoder.encode(parts, "")
    metadata = {"format": _CHECKPOINT_FORMAT, "version": str(_CHECKPOINT_VERSION),
                "structure": json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    if fmt == "npz":
        save_npz(path, encoder.arrays, metadata)
    else:
        save_safetensors(path, encoder.arrays, metadata)


def _decode_checkpoint(path: Path, arrays: dict, metadata: dict) -> dict:
    if not isinstance(metadata, dict) or metadata.get("format") != _CHECKPOINT_FORMAT \
            or "structure" not in metadata:
        raise CheckpointError(f"{path}: not a zerodl checkpoint (no checkpoint structure entry); "
                              "plain weight files load with load_weights / load_arrays")
    try:
        version = int(metadata.get("version", "0"))
    except ValueError:
        version = -1
    if not 1 <= version <= _CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {metadata.get('version')!r} "
                              f"is not supported (this zerodl reads 1..{_CHECKPOINT_VERSION})")
    try:
        structure = json.loads(metadata["structure"])
    except (TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: checkpoint structure is not valid JSON ({e})") from None
    parts = _decode(structure, arrays, str(path))
    if not isinstance(parts, dict):
        raise CheckpointError(f"{path}: checkpoint structure must describe a dict of parts")
    return parts


def load_checkpoint(path) -> dict:
    """Read what :func:`save_checkpoint` wrote: ``{"model": ..., "optimizer": ..., "extra": ..., ...}``.

    Only the parts that were saved are present. Nested values come back with
    their original types (OrderedDict, tuple, int keys, NumPy scalars ...).
    The format is detected from the file's first bytes.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        arrays, metadata = load_npz(path)
    else:
        arrays, metadata = load_safetensors(path)
    return _decode_checkpoint(path, arrays, metadata)


def restore_rng(state) -> np.random.Generator:
    """A ``numpy.random.Generator`` continuing exactly from a saved ``bit_generator.state`` dict."""
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError("restore_rng: expected a bit_generator.state dict naming one of "
                         f"{', '.join(_BIT_GENERATORS)}, got {state!r:.120}")
    bit_generator = getattr(np.random, state["bit_generator"])()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"restore_rng: invalid {state['bit_generator']} state ({e})") from None
    return np.random.Generator(bit_generator)

