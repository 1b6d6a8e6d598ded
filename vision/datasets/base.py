"""The image-classification dataset every reader in :mod:`vision.datasets` returns.

An :class:`ImageDataset` holds uint8 images ``(N, H, W, C)`` (C = 1 or 3),
int64 labels ``(N,)`` and the class names. It plugs into :mod:`core.data`
two ways:

* per sample: ``DataLoader(ds, ...)`` calls :meth:`ImageDataset.get_sample`
  with the loader's per-sample Generator, so an augmentation pipeline set as
  ``transform`` (``pipeline(image, rng=rng)`` on ``(H, W, C)`` uint8) is
  reproducible; :class:`ImageCollate` turns the augmented uint8 samples into a
  normalised ``(N, C, H, W)`` float batch;
* whole arrays: ``ArrayDataset(*ds.as_arrays())`` is batched by fancy
  indexing, the fast path when there is no augmentation.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from core.data import apply_transform, check_transform

__all__ = ["ImageDataset", "ImageCollate", "normalize_images"]

_CHUNK = 4096  # images per step when streaming statistics or conversions


def _as_images(images, where: str) -> np.ndarray:
    """Validate ``images`` as uint8 ``(N, H, W, C)``; ``(N, H, W)`` gains ``C = 1``."""
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{where}: images must be uint8 (N, H, W, C), got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: images must have shape (N, H, W) or (N, H, W, C) with C = 1 or 3, "
                         f"got {images.shape}")
    return images


def _as_labels(labels, n: int, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{where}: labels must have shape ({n},) to match the images, got {labels.shape}")
    if n:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
            raise ValueError(f"{where}: labels must lie in [0, {num_classes}) for {num_classes} classes, "
                             f"got values in [{lo}, {hi}] (first bad label {int(labels[bad])} at index {bad})")
    return labels.astype(np.int64, copy=False)


def _as_classes(classes, where: str) -> list:
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError(f"{where}: classes must name at least one class, got an empty list")
    if len(set(classes)) != len(classes):
        dupes = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(f"{where}: class names must be unique, got duplicates {dupes}")
    return classes


def _check_stats(values, channels: int, name: str, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise ValueError(f"{where}: {name} needs 1 or {channels} values (one per channel), got {arr.size}")
    if name == "std" and np.any(arr <= 0):
        raise ValueError(f"{where}: std must be positive, got {arr.tolist()}")
    return arr


def normalize_images(images: np.ndarray, mean=None, std=None, layout: str = "NCHW",
                     dtype=np.float32) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` -> float ``(N, C, H, W)`` (or ``NHWC``) in [0, 1], then ``(x - mean) / std``.

    ``mean`` and ``std`` are per-channel values on the [0, 1] scale (what
    :meth:`ImageDataset.channel_stats` returns), or None for plain ``/ 255``.
    """
    where = "normalize_images"
    images = _as_images(images, where)
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{where}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{where}: dtype must be a floating dtype, got {dtype}")
    if (mean is None) != (std is None):
        raise ValueError(f"{where}: pass both mean and std or neither, got mean={mean!r} std={std!r}")
    channels = images.shape[-1]
    # Fold /255 into the affine map: x * scale + shift with scale = 1/(255 std), shift = -mean/std.
    scale = np.full(channels, 1.0 / 255.0)
    shift = np.zeros(channels)
    if mean is not None:
        m, s = _check_stats(mean, channels, "mean", where), _check_stats(std, channels, "std", where)
        scale, shift = scale / s, -m / s
    src = images.transpose(0, 3, 1, 2) if layout == "NCHW" else images
    out = np.empty(src.shape, dtype=dtype)
    bshape = (1, channels, 1, 1) if layout == "NCHW" else (1, 1, 1, channels)
    scale, shift = scale.astype(dtype).reshape(bshape), shift.astype(dtype).reshape(bshape)
    for start in range(0, len(src), _CHUNK):  # chunks keep the float temporaries small
        block = out[start:start + _CHUNK]
        np.multiply(src[start:start + _CHUNK], scale, out=block, casting="unsafe")
        block += shift
    return out


class ImageDataset:
    """Labelled uint8 images for classification.

    Args:
        images: uint8 ``(N, H, W, C)`` with C = 1 or 3 (``(N, H, W)`` means C = 1).
        labels: integer ``(N,)`` class indices in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` names label ``k``.
        name: the dataset's name (``"fashion-mnist"``, a folder name, ...).
        transform: per-sample ``transform(image, rng=rng)`` (or ``(image)``,
            ``(image, rng)``) on ``(H, W, C)`` uint8 images, e.g. a
            ``core.augment`` pipeline; applied by :meth:`get_sample`.

    Attributes: ``images``, ``labels`` (int64), ``classes``, ``name``,
    ``transform``, ``image_shape`` ``(H, W, C)``.
    """

    def __init__(self, images, labels, classes: Sequence[str], name: str = "images",
                 transform: Callable | None = None):
        where = f"ImageDataset({name!r})"
        self._images = _as_images(images, where)
        self.classes = _as_classes(classes, where)
        self.labels = _as_labels(labels, len(self._images), len(self.classes), where)
        self.image_shape = tuple(int(d) for d in self._images.shape[1:])
        self.name = str(name)
        self.transform = transform

    # The transform's call style is derived on assignment so get_sample stays cheap.
    @property
    def transform(self):
        return self._transform

    @transform.setter
    def transform(self, value):
        self._style = check_transform(value, f"ImageDataset({self.name!r})")
        self._transform = value

    @property
    def images(self) -> np.ndarray:
        """uint8 ``(N, H, W, C)``."""
        return self._images

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def load_image(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``(H, W, C)``, before any transform."""
        return self._images[index]

    def get_sample(self, index: int, rng=None):
        """``(image, label)`` of sample ``index``; ``rng`` feeds the transform (default ``default_rng(index)``)."""
        image = self.load_image(index)
        if self._transform is not None:
            image = apply_transform(self._transform, self._style, image,
                           rng if rng is not None else np.random.default_rng(index))
        return image, int(self.labels[index])

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"ImageDataset({self.name!r}): index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ImageDataset({self.name!r}): index {index} out of range for {n} images")
        return self.get_sample(int(index) % n)

    def _image_chunks(self):
        """Yield the images as uint8 ``(n, H, W, C)`` blocks (lazy datasets load them block by block)."""
        for start in range(0, len(self), _CHUNK):
            yield self.images[start:start + _CHUNK]

    def class_counts(self) -> np.ndarray:
        """Images per class, int64 ``(num_classes,)``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def channel_stats(self) -> tuple:
        """Per-channel ``(mean, std)`` of the pixel values scaled to [0, 1], float64 ``(C,)`` each.

        Exact: accumulated as 256-bin histograms per channel, so there is no
        float round-off however many images there are. Use the training
        split's statistics to normalise every split.
        """
        channels = self.image_shape[-1]
        hist = np.zeros((channels, 256), dtype=np.int64)
        for block in self._image_chunks():
            for c in range(channels):
                hist[c] += np.bincount(block[..., c].reshape(-1), minlength=256)
        total = hist.sum(axis=1)
        if not total.all():
            raise ValueError(f"ImageDataset({self.name!r}).channel_stats: the dataset has no images")
        values = np.arange(256) / 255.0
        mean = hist @ values / total
        var = hist @ values ** 2 / total - mean ** 2
        return mean, np.sqrt(np.maximum(var, 0.0))

    def as_arrays(self, normalize: bool = True, layout: str = "NCHW", mean=None, std=None,
                  dtype=np.float32) -> tuple:
        """All samples as arrays ``(x, y)`` for ``core.data.ArrayDataset`` (no transform applied).

        Args:
            normalize: True gives float ``x`` in [0, 1] (then standardised when
                ``mean``/``std`` are given); False gives the raw uint8 pixels.
            layout: ``"NCHW"`` (models) or ``"NHWC"``.
            mean, std: per-channel statistics on the [0, 1] scale, usually the
                training split's :meth:`channel_stats`.
            dtype: float dtype of ``x`` when normalising.

        Returns:
            ``x`` ``(N, C, H, W)`` (or ``(N, H, W, C)``), ``y`` int64 ``(N,)``.
        """
        where = f"ImageDataset({self.name!r}).as_arrays"
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"{where}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
        if normalize:
            return normalize_images(self.images, mean, std, layout, dtype), self.labels.copy()
        if mean is not None or std is not None:
            raise ValueError(f"{where}: mean/std standardise float images; they need normalize=True")
        images = self.images
        x = np.ascontiguousarray(images.transpose(0, 3, 1, 2) if layout == "NCHW" else images)
        return x, self.labels.copy()

    def subset(self, indices) -> "ImageDataset":
        """A new in-memory :class:`ImageDataset` with the samples at ``indices`` (same classes and transform)."""
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"ImageDataset({self.name!r}).subset: indices must be a 1-d integer sequence, "
                             f"got shape {idx.shape} dtype {idx.dtype}")
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ValueError(f"ImageDataset({self.name!r}).subset: indices must lie in [-{n}, {n}), "
                             f"got min {idx.min()} max {idx.max()}")
        if self._images is not None:
            images = self._images[idx]
        else:
            images = np.empty((len(idx),) + self.image_shape, dtype=np.uint8)
            for k, i in enumerate(idx):
                images[k] = self.load_image(int(i))
        return ImageDataset(images, self.labels[idx], self.classes, self.name, self._transform)

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, image_shape=({h}, {w}, {c}), "
                f"classes={self.num_classes}, transform={self._transform!r})")


class ImageCollate:
    """Collate ``(image, label)`` samples (uint8 ``(H, W, C)``) into ``(x, y)`` for a model.

    ``x`` is float ``(N, C, H, W)`` in [0, 1], standardised with per-channel
    ``mean``/``std`` when given; ``y`` is int64 ``(N,)``. Pass it as
    ``DataLoader(..., collate=ImageCollate(mean, std))``; it pickles, so it
    works with worker processes too.
    """

    def __init__(self, mean=None, std=None, layout: str = "NCHW", dtype=np.float32):
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"ImageCollate: layout must be 'NCHW' or 'NHWC', got {layout!r}")
        if (mean is None) != (std is None):
            raise ValueError(f"ImageCollate: pass both mean and std or neither, got mean={mean!r} std={std!r}")
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.layout, self.dtype = layout, np.dtype(dtype)

    def __call__(self, samples: list):
        images = np.stack([np.asarray(s[0]) for s in samples])
        labels = np.asarray([s[1] for s in samples], dtype=np.int64)
        return normalize_images(images, self.mean, self.std, self.layout, self.dtype), labels

    def __repr__(self) -> str:
        stats = "" if self.mean is None else f"mean={self.mean.tolist()}, std={self.std.tolist()}, "
        return f"ImageCollate({stats}layout={self.layout!r}, dtype={self.dtype})"
