"""IDX files: the format of MNIST, Fashion-MNIST and KMNIST (raw or gzip-compressed).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a
type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, then one big-endian uint32 per
dimension and the data in C order, big-endian. Every check names the file,
because a wrong or half-downloaded file is the usual cause.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .base import ImageDataset

__all__ = ["read_idx", "write_idx", "find_idx_files", "load_idx_dataset", "IDX_SPLITS"]

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: code for code, dt in _TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

#: File-name prefix of each split in the MNIST family.
IDX_SPLITS = {"train": "train", "test": "t10k"}


def _open(path: Path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def _read_exact(f, out: np.ndarray) -> int:
    """Fill ``out``'s bytes from ``f``; return how many bytes arrived (fewer means truncated)."""
    view = memoryview(out).cast("B")
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def read_idx(path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw, detected from its first bytes) into a native-endian array.

    Raises:
        ValueError: naming ``path`` for a bad magic number, an unknown type
            code, a truncated file, trailing bytes or a corrupt gzip stream.
        FileNotFoundError: when ``path`` does not exist.
    """
    path = Path(path)
    where = f"read_idx: {path}"
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4:
                raise ValueError(f"{where}: file is {len(header)} bytes long; an IDX file starts with a "
                                 "4-byte magic number")
            zero, code, ndim = struct.unpack(">HBB", header)
            if zero != 0 or code not in _TYPES or ndim == 0:
                raise ValueError(f"{where}: bad magic number 0x{header.hex()}; expected 0x0000TTDD with type "
                                 f"TT in {{08, 09, 0B, 0C, 0D, 0E}} and DD >= 1 dimensions "
                                 "(is this an IDX file?)")
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"{where}: truncated header; magic 0x{header.hex()} announces {ndim} "
                                 f"dimensions ({4 * ndim} bytes) but only {len(raw_dims)} bytes follow")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            dtype = _TYPES[code]
            count = int(np.prod(dims, dtype=np.int64))
            data = np.empty(count, dtype=dtype)
            got = _read_exact(f, data)
            expected = count * dtype.itemsize
            if got < expected:
                raise ValueError(f"{where}: truncated; dimensions {dims} of {dtype.itemsize}-byte values need "
                                 f"{expected} data bytes but the file holds {got}")
            if f.read(1):
                raise ValueError(f"{where}: trailing bytes after the {expected} data bytes that dimensions "
                                 f"{dims} describe")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{where}: corrupt gzip stream ({exc}); delete the file and fetch it again") from exc
    data = data.reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else data


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if key not in _CODES or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: {path}: need a 1- to 255-d array of uint8, int8, int16, int32, float32 "
                         f"or float64, got {array.ndim}-d {array.dtype}")
    code = _CODES[key]
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    body = np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + body)


def find_idx_files(folder, split: str = "train"):
    """``(images_path, labels_path)`` of ``split`` in ``folder``, or None when either is missing.

    Accepts the usual spellings: ``train-images-idx3-ubyte``,
    ``train-images.idx3-ubyte``, each raw or with ``.gz`` (test files start
    with ``t10k``).
    """
    if split not in IDX_SPLITS:
        raise ValueError(f"find_idx_files: split must be one of {sorted(IDX_SPLITS)}, got {split!r}")
    prefix = IDX_SPLITS[split]
    folder = Path(folder)
    found = []
    for kind, dims in (("images", 3), ("labels", 1)):
        candidates = [folder / f"{prefix}-{kind}{sep}idx{dims}-ubyte{ext}"
                      for sep in ("-", ".") for ext in (".gz", "")]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return tuple(found)


def load_idx_dataset(images_path, labels_path, classes, name: str = "idx", transform=None) -> ImageDataset:
    """An :class:`ImageDataset` from an IDX image file ``(N, H, W)`` uint8 and a label file ``(N,)``."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"load_idx_dataset: {images_path}: expected uint8 images of shape (N, H, W), "
                         f"got {images.ndim}-d {images.dtype} with shape {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"load_idx_dataset: {labels_path}: expected integer labels of shape (N,), "
                         f"got {labels.ndim}-d {labels.dtype} with shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"load_idx_dataset: {os.fspath(images_path)} holds {len(images)} images but "
                         f"{os.fspath(labels_path)} holds {len(labels)} labels")
    if len(labels) and int(labels.max()) >= len(classes):
        raise ValueError(f"load_idx_dataset: {labels_path}: labels must lie in [0, {len(classes)}) for "
                         f"{len(classes)} classes, got a label {int(labels.max())}")
    return ImageDataset(images, labels, classes, name=name, transform=transform)
