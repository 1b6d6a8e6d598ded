"""Datasets by name: ``get_dataset("fashion-mnist", split="train")``.

Where files are looked for, in order: ``root`` (the files directly in it, or
in ``root/<name>/``), the cache folder (``$ZERODL_DATA`` or
``~/.cache/zerodl/datasets``, ``<cache>/<name>/``), then system locations
(Fashion-MNIST: ``/usr/share/datasets/fashion-mnist/`` from the Debian package
``dataset-fashion-mnist``). ``download=True`` fetches missing MNIST,
Fashion-MNIST or CIFAR-10 files into ``root/<name>/`` (or the cache).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from . import cifar
from .base import ImageDataset
from .download import REMOTE_FILES, dataset_cache_dir, download_dataset
from .idx import IDX_SPLITS, find_idx_files, load_idx_dataset

__all__ = ["DATASETS", "CLASS_NAMES", "SYSTEM_DIRS", "canonical_name", "dataset_locations", "find_dataset",
           "get_dataset"]

_IDX_DATASETS = ("mnist", "fashion-mnist", "kmnist")
#: Every name :func:`get_dataset` accepts (aliases such as ``fashion_mnist`` map onto these).
DATASETS = _IDX_DATASETS + ("cifar10", "cifar100")

#: Class names of the fixed-class datasets (CIFAR's come from its meta file).
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    # Romanised hiragana (お き す つ な は ま や れ を), so plots need no Japanese font.
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}

#: Folders system packages install datasets into.
SYSTEM_DIRS = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100"}
_SPLITS = tuple(IDX_SPLITS)


def canonical_name(name: str) -> str:
    """The registry name for ``name`` (case-insensitive, aliases resolved); ValueError lists valid names."""
    if not isinstance(name, str):
        raise TypeError(f"get_dataset: name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return key


def dataset_locations(name: str, root=None, cache_dir=None) -> list:
    """The folders searched for dataset ``name``, in order (they need not exist)."""
    name = canonical_name(name)
    places = []
    if root is not None:
        root = Path(root).expanduser()
        places += [root, root / name]
    places.append(dataset_cache_dir(name, cache_dir))
    places += list(SYSTEM_DIRS.get(name, ()))
    unique = []
    for p in places:
        if p not in unique:
            unique.append(p)
    return unique


def _present(name: str, folder: Path, split: str) -> bool:
    if not folder.is_dir():
        return False
    if name in _IDX_DATASETS:
        return find_idx_files(folder, split) is not None
    sub, archive = ((cifar.CIFAR10_FOLDER, cifar.CIFAR10_ARCHIVE) if name == "cifar10"
                    else (cifar.CIFAR100_FOLDER, cifar.CIFAR100_ARCHIVE))
    meta = "batches.meta" if name == "cifar10" else "meta"
    return (folder / sub / meta).is_file() or (folder / meta).is_file() or (folder / archive).is_file()


def find_dataset(name: str, split: str = "train", root=None, cache_dir=None):
    """The first folder of :func:`dataset_locations` holding ``split`` of ``name``, or None."""
    name = canonical_name(name)
    return next((p for p in dataset_locations(name, root, cache_dir) if _present(name, p, split)), None)


def _expected_files(name: str, split: str) -> str:
    if name in _IDX_DATASETS:
        prefix = IDX_SPLITS[split]
        return f"{prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz (or the uncompressed files)"
    if name == "cifar10":
        return f"{cifar.CIFAR10_ARCHIVE} or its extracted folder {cifar.CIFAR10_FOLDER}/"
    return f"{cifar.CIFAR100_ARCHIVE} or its extracted folder {cifar.CIFAR100_FOLDER}/"


def _load(name: str, folder: Path, split: str, transform, label_type: str) -> ImageDataset:
    if name in _IDX_DATASETS:
        images, labels = find_idx_files(folder, split)
        return load_idx_dataset(images, labels, CLASS_NAMES[name], name=name, transform=transform)
    if name == "cifar10":
        return cifar.load_cifar10(folder, split, transform=transform)
    return cifar.load_cifar100(folder, split, label_type=label_type, transform=transform)


def get_dataset(name: str, split: str = "train", root=None, download: bool = False, transform=None,
                cache_dir=None, label_type: str = "fine", mirrors: Sequence[str] = (),
                progress: Callable | None = None) -> ImageDataset:
    """Load ``split`` (``"train"`` or ``"test"``) of dataset ``name`` as an :class:`ImageDataset`.

    Args:
        name: one of :data:`DATASETS` (case-insensitive; ``fashion_mnist``, ``cifar-10`` also work).
        split: ``"train"`` or ``"test"``. Take validation data out of
            ``"train"`` (``core.data.train_val_split``); keep ``"test"`` for the final figure.
        root: a data folder searched first (files directly in it or in ``root/<name>/``);
            downloads go to ``root/<name>/`` when given.
        download: fetch missing files (MNIST, Fashion-MNIST, CIFAR-10).
        transform: per-sample augmentation for :meth:`ImageDataset.get_sample`.
        cache_dir: overrides ``$ZERODL_DATA`` / ``~/.cache/zerodl/datasets``.
        label_type: CIFAR-100 labels, ``"fine"`` (100) or ``"coarse"`` (20).
        mirrors, progress: passed to :func:`vision.datasets.download.download_dataset`.

    Raises:
        ValueError: unknown name or split (the message lists the valid ones).
        FileNotFoundError: the files are nowhere and ``download`` is False;
            the message lists the folders searched and how to get the files.
    """
    name = canonical_name(name)
    if split not in _SPLITS:
        raise ValueError(f"get_dataset: split must be one of {', '.join(_SPLITS)}, got {split!r}")
    folder = find_dataset(name, split, root, cache_dir)
    if folder is None and download:
        if name not in REMOTE_FILES:
            raise ValueError(f"get_dataset: there is no downloader for {name!r} (only for "
                             f"{', '.join(REMOTE_FILES)}); place {_expected_files(name, split)} in "
                             f"{dataset_locations(name, root, cache_dir)[0]}")
        target = Path(root).expanduser() if root is not None else cache_dir
        folder = download_dataset(name, cache_dir=target, mirrors=mirrors, progress=progress)
    if folder is None:
        searched = "\n".join(f"  - {p}" for p in dataset_locations(name, root, cache_dir))
        hints = []
        if name in REMOTE_FILES:
            hints.append("pass download=True (needs internet)")
        if name == "fashion-mnist":
            hints.append("install the Debian package: apt-get install dataset-fashion-mnist")
        hints.append(f"copy {_expected_files(name, split)} into one of those folders")
        raise FileNotFoundError(f"get_dataset: {name} ({split}) not found; searched:\n{searched}\n"
                                f"To get it: {'; or '.join(hints)}.")
    return _load(name, folder, split, transform, label_type)
