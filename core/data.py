"""Datasets and the mini-batch loader.

A dataset is anything with ``__len__`` and ``__getitem__(i) -> (x, y)``. A
dataset that also defines ``get_sample(i, rng)`` receives the loader's per-sample
Generator, which is how random joint transforms (image + mask) stay
reproducible; :class:`ArrayDataset` and :class:`Subset` do.

Reproducibility: epoch ``e`` of a loader with seed ``s`` visits the samples
in the order ``default_rng([s, e]).permutation(n)``, and sample ``i``'s
transform draws from ``default_rng([s, e, i, 1])``. Nothing depends on the
number of worker processes or on earlier epochs, so a run resumed at epoch
``e`` (``set_epoch(e)``) sees exactly the batches an uninterrupted run saw.
"""
from __future__ import annotations

import inspect
import math
import multiprocessing
import sys
from collections import deque
from typing import Callable, Protocol, runtime_checkable

import numpy as np

__all__ = ["Dataset", "ArrayDataset", "Subset", "random_split", "train_val_split",
           "DataLoader", "default_collate"]

# The last entropy word keeps per-sample streams apart from the shuffle stream:
# SeedSequence pads with zeros, so [s, e] and [s, e, 0] would be the same seed.
_SAMPLE_STREAM = 1


@runtime_checkable
class Dataset(Protocol):
    """Anything with ``__len__`` and ``__getitem__(index) -> (x, y)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index): ...


def _call_style(transform) -> str:
    """How to call ``transform``: ``"kw"`` (has an ``rng`` parameter), ``"pos"`` (x, rng) or ``"one"`` (x)."""
    try:
        params = inspect.signature(transform).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature take the sample alone
        return "one"
    if any(p.name == "rng" and p.kind != p.POSITIONAL_ONLY for p in params):
        return "kw"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return "pos"
    return "one"


def apply_transform(transform, style: str, x, rng):
    """Call ``transform`` on ``x`` in the calling ``style`` found by ``check_transform``."""
    if style == "kw":
        return transform(x, rng=rng)
    if style == "pos":
        return transform(x, rng)
    return transform(x)


def check_transform(transform, owner: str):
    """Validate a transform and return its calling style: ``"kw"`` (rng=), ``"pos"`` (x, rng) or ``"one"`` (x)."""
    if transform is not None and not callable(transform):
        raise TypeError(f"{owner}: transform must be callable (x) or (x, rng), got {type(transform).__name__}")
    return None if transform is None else _call_style(transform)


class ArrayDataset:
    """Samples ``(x[i], y[i])`` from in-memory (or memory-mapped) arrays.

    Args:
        x: array ``(N, ...)``, e.g. ``(N, C, H, W)`` float images or ``(N, H, W, C)`` uint8.
        y: array ``(N, ...)`` of labels/targets, or None (samples are then ``(x[i], None)``).
        transform: per-sample ``transform(x)`` or ``transform(x, rng)``.
            Indexing with ``ds[i]`` uses ``default_rng(i)``; the loader passes
            its own per-(seed, epoch, index) Generator through :meth:`get_sample`.
    """

    def __init__(self, x, y=None, transform: Callable | None = None):
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        if x.ndim == 0:
            raise ValueError("ArrayDataset: x must have a sample axis, got a 0-d array")
        if y is not None:
            y = y if isinstance(y, np.ndarray) else np.asarray(y)
            if y.ndim == 0 or len(y) != len(x):
                raise ValueError(f"ArrayDataset: x has {len(x)} samples but y has "
                                 f"{len(y) if y.ndim else 'no sample axis (0-d)'}; they must match")
        self.x, self.y = x, y
        self.transform = transform
        self._style = check_transform(transform, "ArrayDataset")

    def __len__(self) -> int:
        return len(self.x)

    def get_sample(self, index, rng=None):
        """``(x, y)`` of sample ``index``; ``rng`` feeds the transform (default ``default_rng(index)``)."""
        x = self.x[index]
        if self.transform is not None:
            x = apply_transform(self.transform, self._style, x, rng if rng is not None else np.random.default_rng(index))
        return x, (None if self.y is None else self.y[index])

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"ArrayDataset: index must be an int, got {type(index).__name__}")
        n = len(self.x)
        if not -n <= index < n:
            raise IndexError(f"ArrayDataset: index {index} out of range for {n} samples")
        return self.get_sample(int(index) % n)

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.shape} {self.y.dtype}"
        return f"ArrayDataset(x={self.x.shape} {self.x.dtype}, y={y}, transform={self.transform!r})"


class Subset:
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset, indices):
        n = len(dataset)
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"Subset: indices must be a 1-d integer sequence, got shape {idx.shape} "
                             f"dtype {idx.dtype}")
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ValueError(f"Subset: indices must lie in [-{n}, {n}) for a dataset of {n} samples, "
                             f"got min {idx.min()} max {idx.max()}")
        self.dataset = dataset
        self.indices = np.where(idx < 0, idx + n, idx).astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def get_sample(self, index, rng=None):
        inner = int(self.indices[index])
        if hasattr(self.dataset, "get_sample"):
            return self.dataset.get_sample(inner, rng)
        return self.dataset[inner]

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"Subset: index must be an int, got {type(index).__name__}")
        n = len(self.indices)
        if not -n <= index < n:
            raise IndexError(f"Subset: index {index} out of range for {n} samples")
        return self.get_sample(int(index) % n)

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {type(self.dataset).__name__} with {len(self.dataset)})"


def _resolve_arrays(dataset, ignore_transform: bool = False):
    """``(x, y, indices)`` when ``dataset`` is an un-transformed ArrayDataset or nested Subsets of one.

    ``indices`` (None for all rows) maps the outer dataset's positions to array rows.
    """
    indices = None
    while isinstance(dataset, Subset):
        indices = dataset.indices if indices is None else dataset.indices[indices]
        dataset = dataset.dataset
    if type(dataset) is ArrayDataset and (ignore_transform or dataset.transform is None):
        return dataset.x, dataset.y, indices
    return None


def _split_lengths(n: int, lengths_or_fractions) -> list:
    values = list(lengths_or_fractions)
    if not values:
        raise ValueError("random_split: lengths_or_fractions is empty")
    if all(isinstance(v, (int, np.integer)) for v in values):
        if any(v < 0 for v in values) or sum(values) != n:
            raise ValueError(f"random_split: lengths {values} must be non-negative and sum to the "
                             f"dataset size {n}")
        return [int(v) for v in values]
    fractions = [float(v) for v in values]
    if any(not 0 <= f <= 1 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"random_split: fractions {values} must lie in [0, 1] and sum to 1")
    lengths = [int(math.floor(n * f)) for f in fractions]
    for i in range(n - sum(lengths)):  # hand the remainder out round-robin
        lengths[i % len(lengths)] += 1
    return lengths


def random_split(dataset, lengths_or_fractions, seed=0) -> list:
    """Split into non-overlapping random :class:`Subset`s of the given lengths (or fractions)."""
    n = len(dataset)
    lengths = _split_lengths(n, lengths_or_fractions)
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, np.sort(order[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]


def _labels(dataset) -> np.ndarray:
    resolved = _resolve_arrays(dataset, ignore_transform=True)  # labels do not need the x transform
    if resolved is not None and resolved[1] is not None:
        y, idx = resolved[1], resolved[2]
        y = y if idx is None else y[idx]
    elif getattr(dataset, "labels", None) is not None and len(dataset.labels) == len(dataset):
        y = np.asarray(dataset.labels)  # e.g. image datasets: no need to load/augment every sample
    else:
        y = np.asarray([dataset[i][1] for i in range(len(dataset))])
    if y.ndim != 1 or y.dtype.hasobject:
        raise ValueError(f"train_val_split: stratify needs one class label per sample (shape (N,)), "
                         f"got labels of shape {y.shape} dtype {y.dtype}")
    return y


def train_val_split(dataset, val_fraction: float = 0.1, stratify: bool = False, seed=0):
    """Split into ``(train_subset, val_subset)`` with ``round(N * val_fraction)`` validation samples.

    ``stratify=True`` keeps each class's share in both parts (largest-remainder
    rounding per class, so the total is exact). Indices are sorted in each part.
    """
    if not isinstance(val_fraction, (float, int)) or not 0 < val_fraction < 1:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    n = len(dataset)
    n_val = int(round(n * val_fraction))
    if not 0 < n_val < n:
        raise ValueError(f"train_val_split: val_fraction={val_fraction} of {n} samples gives {n_val} "
                         "validation samples; need at least one in each part")
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n)
        val = order[:n_val]
    else:
        y = _labels(dataset)
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        ideal = counts * (n_val / n)
        take = np.floor(ideal).astype(np.int64)
        short = n_val - int(take.sum())
        take[np.argsort(-(ideal - take), kind="stable")[:short]] += 1
        val = np.concatenate([rng.permutation(np.flatnonzero(inverse == c))[:take[c]]
                              for c in range(len(classes))])
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return Subset(dataset, np.flatnonzero(~mask)), Subset(dataset, np.flatnonzero(mask))


def default_collate(samples: list):
    """Stack a list of ``(x, y)`` samples into ``(xb, yb)`` arrays (``yb`` None when every y is None)."""
    xs = np.stack([np.asarray(s[0]) for s in samples])
    ys = [s[1] for s in samples]
    if all(y is None for y in ys):
        return xs, None
    return xs, np.stack([np.asarray(y) for y in ys])


class _BatchMaker:
    """Builds batch number ``b`` of an epoch; shared verbatim by the main process and workers."""

    def __init__(self, dataset, transform, collate, seed: int):
        self.dataset, self.transform, self.collate, self.seed = dataset, transform, collate, seed
        self.style = None if transform is None else _call_style(transform)
        self.arrays = None if collate is not None else _resolve_arrays(dataset)
        self.collate = collate or default_collate
        self.per_sample_rng = transform is not None or (self.arrays is None and hasattr(dataset, "get_sample"))

    def _rng(self, epoch: int, index: int):
        return np.random.default_rng([self.seed, epoch, int(index), _SAMPLE_STREAM])

    def __call__(self, epoch: int, indices: np.ndarray):
        if self.arrays is not None:  # fast path: one fancy-index per array
            x, y, base = self.arrays
            rows = indices if base is None else base[indices]
            xb = x[rows]
            yb = None if y is None else y[rows]
            if self.transform is not None:
                xb = np.stack([apply_transform(self.transform, self.style, xi, self._rng(epoch, i))
                               for xi, i in zip(xb, indices)])
            return xb, yb
        samples = []
        has_get = hasattr(self.dataset, "get_sample")
        for i in indices:
            rng = self._rng(epoch, i) if self.per_sample_rng else None
            x, y = self.dataset.get_sample(int(i), rng) if has_get else self.dataset[int(i)]
            if self.transform is not None:
                x = apply_transform(self.transform, self.style, x, rng)
            samples.append((x, y))
        return self.collate(samples)


_worker_maker: _BatchMaker | None = None


def _worker_init(maker: _BatchMaker) -> None:
    global _worker_maker
    _worker_maker = maker


def _worker_batch(epoch: int, indices: np.ndarray):
    return _worker_maker(epoch, indices)


class DataLoader:
    """Iterate a dataset in mini-batches ``(xb, yb)``.

    Args:
        dataset: see :class:`Dataset`. An :class:`ArrayDataset` without
            transform (or Subsets of one) is batched by fancy indexing.
        batch_size: samples per batch (the last one may be smaller).
        shuffle: visit samples in a fresh random order each epoch.
        seed: non-negative int fixing every epoch's order and transform draws
            (None draws one from the OS once, at construction).
        drop_last: drop the final incomplete batch.
        transform: per-sample ``transform(x)``, ``transform(x, rng)`` or ``transform(x, rng=...)``.
        num_workers: 0 computes batches here; ``k > 0`` computes whole batches
            in ``k`` processes (same batches, same order).
        collate: ``collate(list_of_(x, y)) -> batch`` (default stacks x and y).
        prefetch: batches in flight per worker.
        mp_context: multiprocessing start method; default ``"fork"`` on Linux,
            else ``"spawn"`` (then dataset, transform and collate must pickle).

    Iterating runs epoch ``self.epoch`` and then advances it; ``set_epoch(e)``
    selects the epoch explicitly (resume).
    """

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = True, seed=0, drop_last: bool = False,
                 transform: Callable | None = None, num_workers: int = 0, collate: Callable | None = None,
                 prefetch: int = 2, mp_context: str | None = None):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
            raise TypeError(f"DataLoader: batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
            raise ValueError(f"DataLoader: prefetch must be an int >= 1, got {prefetch!r}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, "
                            f"got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError(f"DataLoader: dataset is empty (len 0): {dataset!r:.100}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (1 << 63))
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got {seed!r}")
        if collate is not None and not callable(collate):
            raise TypeError(f"DataLoader: collate must be callable, got {type(collate).__name__}")
        check_transform(transform, "DataLoader")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.seed, self.drop_last, self.transform = int(seed), bool(drop_last), transform
        self.num_workers, self.collate, self.prefetch = int(num_workers), collate, int(prefetch)
        if mp_context is None:
            mp_context = "fork" if sys.platform.startswith("linux") else "spawn"
        self.mp_context = mp_context
        self.epoch = 0
        self._maker = _BatchMaker(dataset, transform, collate, self.seed)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch`` (its order and transform draws)."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_indices(self, epoch: int) -> list:
        """The dataset indices of every batch of ``epoch``, in order."""
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        stop = len(self) * self.batch_size
        return [order[i:i + self.batch_size] for i in range(0, min(stop, n), self.batch_size)]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        batches = self.batch_indices(epoch)
        if self.num_workers == 0:
            return (self._maker(epoch, b) for b in batches)
        return self._iter_workers(epoch, batches)

    def _iter_workers(self, epoch: int, batches: list):
        ctx = multiprocessing.get_context(self.mp_context)
        pool = ctx.Pool(self.num_workers, initializer=_worker_init, initargs=(self._maker,))
        try:
            pending = deque()
            todo = iter(batches)
            limit = self.num_workers * self.prefetch
            for b in todo:  # keep at most `limit` batches in flight so memory stays bounded
                pending.append(pool.apply_async(_worker_batch, (epoch, b)))
                if len(pending) >= limit:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
        finally:
            pool.terminate()
            pool.join()

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, num_workers={self.num_workers})")
