"""Image-classification datasets: IDX (MNIST family), CIFAR, image folders, a downloader and a registry.

Every reader returns an :class:`ImageDataset` (uint8 ``(N, H, W, C)`` images,
int64 labels, class names) that works with :mod:`core.data`::

    from core.data import ArrayDataset, DataLoader, train_val_split
    from vision.datasets import get_dataset

    train = get_dataset("fashion-mnist", "train")
    fit, val = train_val_split(train, val_fraction=0.1, stratify=True)
    mean, std = train.subset(fit.indices).channel_stats()
    x, y = train.subset(fit.indices).as_arrays(mean=mean, std=std)   # (N, 1, 28, 28) float32
    loader = DataLoader(ArrayDataset(x, y), batch_size=100, seed=0)
"""
from .base import ImageCollate, ImageDataset, normalize_images
from .cifar import RestrictedUnpickler, load_cifar10, load_cifar100, read_cifar_batch
from .download import (REMOTE_FILES, DownloadError, RemoteFile, dataset_cache_dir, default_cache_dir,
                       download_dataset, download_file, sha256_file)
from .folder import ImageFolder, image_extensions, read_image
from .idx import find_idx_files, load_idx_dataset, read_idx, write_idx
from .registry import CLASS_NAMES, DATASETS, canonical_name, dataset_locations, find_dataset, get_dataset

__all__ = [
    "ImageDataset", "ImageCollate", "normalize_images",
    "read_idx", "write_idx", "find_idx_files", "load_idx_dataset",
    "RestrictedUnpickler", "read_cifar_batch", "load_cifar10", "load_cifar100",
    "ImageFolder", "read_image", "image_extensions",
    "RemoteFile", "REMOTE_FILES", "DownloadError", "default_cache_dir", "dataset_cache_dir", "sha256_file",
    "download_file", "download_dataset",
    "DATASETS", "CLASS_NAMES", "canonical_name", "dataset_locations", "find_dataset", "get_dataset",
]
