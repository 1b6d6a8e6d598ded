"""The safetensors file format, written from its specification (no dependency).

Layout of a ``.safetensors`` file::

    8 bytes    N, the header length (unsigned 64-bit little-endian)
    N bytes    UTF-8 JSON object: {"name": {"dtype": "F32", "shape": [2, 3],
               "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
               padded with spaces so the tensor data starts 8-byte aligned
    rest       the tensors' raw little-endian bytes, C order; ``data_offsets``
               are relative to the start of this region, which the tensors
               tile exactly (no gaps, no overlap, nothing after the last one)

This module is the codec only: it writes to and reads from open binary file
objects and raises :class:`SafetensorsError` with a message that does not
name a file; :mod:`core.serialization` adds the path and atomic writes.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from .backend import to_numpy

#: safetensors dtype code -> little-endian NumPy dtype (BF16 is decoded separately).
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {np.dtype(dt).newbyteorder("="): code for code, dt in DTYPES.items() if code != "BF16"}

#: The reference implementation refuses headers above 100 MB; so do we, so a
#: corrupt length field cannot make us allocate gigabytes.
MAX_HEADER_BYTES = 100_000_000


class SafetensorsError(ValueError):
    """A file is not valid safetensors; the message says what is wrong."""


def dtype_code(dtype) -> str:
    """The safetensors code (``"F32"``, ``"I64"``, ...) of a NumPy dtype; TypeError if unsupported."""
    dt = np.dtype(dtype).newbyteorder("=")
    if dt not in _CODES:
        raise TypeError(f"safetensors: dtype {np.dtype(dtype)} is not storable; supported: "
                        + ", ".join(str(d) for d in _CODES))
    return _CODES[dt]


def _prepare(arrays) -> list:
    """Validate names and arrays; return ``[(name, code, little-endian C-contiguous array)]``."""
    if not hasattr(arrays, "items"):
        raise TypeError(f"safetensors: arrays must be a dict of name -> array, got {type(arrays).__name__}")
    out = []
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"safetensors: tensor names must be non-empty str, got {name!r}")
        if name == "__metadata__":
            raise ValueError("safetensors: '__metadata__' is reserved and cannot name a tensor")
        arr = np.asarray(to_numpy(value))
        try:
            code = dtype_code(arr.dtype)
        except TypeError as e:
            raise TypeError(f"safetensors: tensor {name!r}: {e}") from None
        arr = np.asarray(arr, dtype=arr.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d
        out.append((name, code, arr))
    # Largest items first keeps every tensor aligned to its own item size
    # (the reference writer orders by dtype alignment, then name).
    out.sort(key=lambda t: (-t[2].dtype.itemsize, t[0]))
    return out


def _check_metadata(metadata) -> dict | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise TypeError("safetensors: metadata must be a dict of str -> str "
                        f"(JSON-encode other values), got {metadata!r:.120}")
    return dict(metadata)


def _write_tensor(fileobj, arr: np.ndarray) -> None:
    if arr.nbytes:  # the array's own buffer, without a tobytes() copy
        fileobj.write(arr.reshape(-1).view(np.uint8).data)


def write_safetensors(fileobj, arrays, metadata: dict | None = None) -> int:
    """Write ``arrays`` (name -> array) and optional str->str ``metadata`` to a binary file.

    Returns the number of bytes written.
    """
    items = _prepare(arrays)
    metadata = _check_metadata(metadata)
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, code, arr in items:
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    fileobj.write(struct.pack("<Q", len(blob)))
    fileobj.write(blob)
    for _, _, arr in items:
        _write_tensor(fileobj, arr)
    return 8 + len(blob) + offset


def read_header(fileobj, file_size: int | None = None) -> tuple[dict, dict, int]:
    """Parse and validate the header of a safetensors file opened in binary mode.

    Returns ``(tensors, metadata, data_start)`` where ``tensors`` maps name to
    ``{"dtype", "shape", "data_offsets"}`` and ``data_start`` is the file
    offset of the tensor data. Raises :class:`SafetensorsError` on any
    inconsistency: truncated file, header length or offsets that disagree with
    the file size, unknown dtypes, shapes that do not match their byte spans.
    """
    if file_size is None:
        file_size = os.fstat(fileobj.fileno()).st_size
    if file_size < 8:
        raise SafetensorsError(f"file is {file_size} bytes; a safetensors file starts with an "
                               "8-byte header length")
    (n,) = struct.unpack("<Q", fileobj.read(8))
    if n > MAX_HEADER_BYTES:
        raise SafetensorsError(f"header length field says {n} bytes (limit {MAX_HEADER_BYTES}); "
                               "not a safetensors file or corrupt")
    if n > file_size - 8:
        raise SafetensorsError(f"header length field says {n} bytes, only {file_size - 8} bytes follow")
    raw = fileobj.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError("__metadata__ must be an object of string values")
    data_size = file_size - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise SafetensorsError(f"tensor {name!r}: entry needs dtype, shape and data_offsets, got {info!r:.120}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in DTYPES:
            raise SafetensorsError(f"tensor {name!r}: unknown dtype {code!r}; known: {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise SafetensorsError(f"tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
            raise SafetensorsError(f"tensor {name!r}: data_offsets must be [begin, end] with "
                                   f"0 <= begin <= end, got {offsets!r}")
        need = int(np.prod(shape, dtype=np.int64)) * DTYPES[code].itemsize
        if offsets[1] - offsets[0] != need:
            raise SafetensorsError(f"tensor {name!r}: {code} of shape {shape} needs {need} bytes, "
                                   f"data_offsets {offsets} span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    end = 0
    for begin, stop, name in spans:
        if begin != end:
            raise SafetensorsError(f"tensor {name!r}: data starts at {begin}, expected {end} "
                                   "(tensor data regions overlap or leave a gap)")
        end = stop
    if end > data_size:
        raise SafetensorsError(f"header says {end} bytes of tensor data, file has {data_size} "
                               "(truncated?)")
    if end < data_size:
        raise SafetensorsError(f"header accounts for {end} bytes of tensor data, file has {data_size} "
                               f"({data_size - end} unexplained trailing bytes)")
    return header, metadata, 8 + n


def read_safetensors(fileobj, file_size: int | None = None, names=None) -> tuple[dict, dict]:
    """Read ``(arrays, metadata)`` from a safetensors file opened in binary mode.

    Each tensor is read straight into its own aligned, writable array (no
    second copy of the file in memory). BF16 tensors come back as float32.
    ``names`` restricts loading to those tensors (all when None).
    """
    header, metadata, start = read_header(fileobj, file_size)
    wanted = header if names is None else {k: header[k] for k in names if k in header}
    arrays = {}
    for name, info in sorted(wanted.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        code = info["dtype"]
        arr = np.empty(tuple(info["shape"]), dtype=DTYPES[code])
        if arr.nbytes:
            fileobj.seek(start + info["data_offsets"][0])
            got = fileobj.readinto(arr.reshape(-1).view(np.uint8).data)
            if got != arr.nbytes:
                raise SafetensorsError(f"tensor {name!r}: expected {arr.nbytes} bytes, read {got}")
        if code == "BF16":
            # bfloat16 is the top half of a float32: shift the bits back into place.
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif code == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
            raise SafetensorsError(f"tensor {name!r}: BOOL data holds bytes other than 0 and 1")
        elif not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        arrays[name] = arr
    order = {name: i for i, name in enumerate(header)}
    return dict(sorted(arrays.items(), key=lambda kv: order[kv[0]])), dict(metadata)
