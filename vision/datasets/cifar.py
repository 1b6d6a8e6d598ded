"""CIFAR-10 and CIFAR-100, "python version" (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html).

Each batch is a pickled dict: ``data`` uint8 ``(n, 3072)`` (1024 red, then
green, then blue values of a 32x32 image in row-major order), ``labels``
(CIFAR-10) or ``fine_labels``/``coarse_labels`` (CIFAR-100) as lists of int,
and ``filenames``/``batch_label`` as bytes. ``data`` is pickled as a NumPy
array in the published files, as bytes or a list in hand-made ones.

A pickle can run arbitrary code while loading, so these files are read with
:class:`RestrictedUnpickler`: it rebuilds plain containers, bytes, str, numbers
and numeric NumPy arrays, and refuses every other global (``os.system``,
``builtins.eval``, ...) before anything is called. The files are read from
the extracted folder or straight out of the ``.tar.gz`` archive, which is
never unpacked to disk.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from .base import ImageDataset

__all__ = ["RestrictedUnpickler", "load_pickle", "read_cifar_batch", "load_cifar10", "load_cifar100",
           "CIFAR10_ARCHIVE", "CIFAR100_ARCHIVE"]

CIFAR10_ARCHIVE, CIFAR10_FOLDER = "cifar-10-python.tar.gz", "cifar-10-batches-py"
CIFAR100_ARCHIVE, CIFAR100_FOLDER = "cifar-100-python.tar.gz", "cifar-100-python"
_CIFAR10_MEMBERS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR100_MEMBERS = {"train": ["train"], "test": ["test"]}

# Globals a CIFAR batch may name. NumPy pickles an ndarray as _reconstruct +
# ndarray + dtype (protocol <= 4) or _frombuffer (protocol 5); Python 3 pickles
# bytes at protocol <= 2 as _codecs.encode(str, "latin1"). Files written with
# NumPy 1.x name numpy.core, NumPy 2.x name numpy._core.
_ALLOWED = {
    ("builtins", name) for name in ("dict", "list", "tuple", "bytes", "bytearray", "str", "int",
                                    "float", "bool", "set", "frozenset")
} | {
    ("__builtin__", name) for name in ("dict", "list", "tuple", "bytes", "bytearray", "str", "int",
                                       "float", "bool", "set", "frozenset", "unicode", "long")
} | {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
_RENAMED = {"__builtin__": "builtins", "numpy.core.multiarray": "numpy._core.multiarray",
            "numpy.core.numeric": "numpy._core.numeric"}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in an allow-list of harmless constructors.

    ``source`` names the file in error messages. Anything else a pickle
    names raises :class:`pickle.UnpicklingError` before it could be called.
    """

    def __init__(self, file, source: str = "<pickle>"):
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes, as the CIFAR files need
        self.source = source

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"{self.source}: refusing to load global {module}.{name}; a dataset pickle may only "
                "hold dicts, lists, bytes, str, numbers and numeric NumPy arrays")
        module = _RENAMED.get(module, module)
        if module == "numpy._core.multiarray" or module == "numpy._core.numeric":
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):  # NumPy 1.x has only numpy.core
                return super().find_class(module.replace("._core", ".core"), name)
        return super().find_class(module, name)


def load_pickle(data: bytes, source: str):
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; every failure is a ValueError naming ``source``."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except pickle.UnpicklingError as exc:
        raise ValueError(str(exc) if str(exc).startswith(source) else f"{source}: not a valid pickle ({exc})") \
            from exc
    except (EOFError, TypeError, AttributeError, ImportError, IndexError, KeyError, ValueError,
            UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise ValueError(f"{source}: not a valid CIFAR pickle ({type(exc).__name__}: {exc})") from exc


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def _entry(batch: dict, key: str, source: str):
    for k in (key, key.encode()):
        if k in batch:
            return batch[k]
    keys = sorted(str(_text(k)) for k in batch)
    raise ValueError(f"{source}: CIFAR batch has no {key!r} entry (it has {keys})")


def read_cifar_batch(data: bytes, source: str, label_key: str = "labels") -> tuple:
    """Decode one pickled batch into uint8 images ``(n, 32, 32, 3)`` and int64 labels ``(n,)``."""
    batch = load_pickle(data, source)
    if not isinstance(batch, dict):
        raise ValueError(f"{source}: a CIFAR batch is a pickled dict, got {type(batch).__name__}")
    pixels = _entry(batch, "data", source)
    if isinstance(pixels, (bytes, bytearray)):
        pixels = np.frombuffer(pixels, dtype=np.uint8)
    elif isinstance(pixels, list):
        pixels = np.asarray(pixels)
    if not isinstance(pixels, np.ndarray) or pixels.dtype.kind not in "iu":
        kind = pixels.dtype if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise ValueError(f"{source}: 'data' must hold integer pixel values, got {kind}")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise ValueError(f"{source}: 'data' values must lie in [0, 255], got [{pixels.min()}, {pixels.max()}]")
    labels = _entry(batch, label_key, source)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{source}: {label_key!r} must be a flat list of ints, got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    n = len(labels)
    if pixels.size != n * 3072:
        raise ValueError(f"{source}: 'data' holds {pixels.size} values but {n} labels need {n} x 3072 "
                         "(3 x 32 x 32)")
    # Stored channel-planar (n, 3, 32, 32); the dataset convention is (n, H, W, C).
    images = pixels.astype(np.uint8, copy=False).reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_members(root: Path, folder: str, archive: str, members: list, where: str) -> list:
    """``[(bytes, source), ...]`` for ``members``, from the extracted folder or the ``.tar.gz`` archive."""
    for base in (root / folder, root):
        if base.is_dir() and any((base / m).is_file() for m in ("batches.meta", "meta")):
            missing = [str(base / m) for m in members if not (base / m).is_file()]
            if missing:
                raise FileNotFoundError(f"{where}: missing {', '.join(missing)}")
            return [((base / m).read_bytes(), str(base / m)) for m in members]
    path = root / archive if root.is_dir() else root
    if not (path.is_file() and tarfile.is_tarfile(path)):
        raise FileNotFoundError(f"{where}: found neither the folder {root / folder} nor the archive "
                                f"{root / archive}")
    wanted = {f"{folder}/{m}": m for m in members}
    found = {}
    # One sequential pass: seeking backwards in a .tar.gz would decompress it again from the start.
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            name = info.name[2:] if info.name.startswith("./") else info.name
            if name in wanted and info.isfile():
                found[wanted[name]] = (tar.extractfile(info).read(), f"{path}:{name}")
    missing = [f"{folder}/{m}" for m in members if m not in found]
    if missing:
        raise FileNotFoundError(f"{where}: {path} has no member {', '.join(missing)}")
    return [found[m] for m in members]


def _load(root, split, folder, archive, members, meta_member, names_key, label_key, name, transform):
    where = f"load_{name}"
    if split not in members:
        raise ValueError(f"{where}: split must be 'train' or 'test', got {split!r}")
    (meta_bytes, meta_source), *batches = _read_members(Path(root), folder, archive,
                                                        [meta_member] + members[split], where)
    meta = load_pickle(meta_bytes, meta_source)
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_source}: expected a pickled dict of class names, got {type(meta).__name__}")
    classes = [_text(c) for c in _entry(meta, names_key, meta_source)]
    parts = [read_cifar_batch(data, source, label_key=label_key) for data, source in batches]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageDataset(images, labels, classes, name=name, transform=transform)


def load_cifar10(root, split: str = "train", transform=None) -> ImageDataset:
    """CIFAR-10 from ``root``: a folder holding ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``,
    the batches folder itself, or the archive's path. 50,000 train / 10,000 test images ``(32, 32, 3)``."""
    return _load(root, split, CIFAR10_FOLDER, CIFAR10_ARCHIVE, _CIFAR10_MEMBERS, "batches.meta",
                 "label_names", "labels", "cifar10", transform)


def load_cifar100(root, split: str = "train", label_type: str = "fine", transform=None) -> ImageDataset:
    """CIFAR-100 from ``root`` (``cifar-100-python/`` or ``cifar-100-python.tar.gz``, as for CIFAR-10).

    ``label_type="fine"`` gives the 100 classes, ``"coarse"`` the 20 superclasses.
    """
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"load_cifar100: label_type must be 'fine' or 'coarse', got {label_type!r}")
    return _load(root, split, CIFAR100_FOLDER, CIFAR100_ARCHIVE, _CIFAR100_MEMBERS, "meta",
                 f"{label_type}_label_names", f"{label_type}_labels", "cifar100", transform)
