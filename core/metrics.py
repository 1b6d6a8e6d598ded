"""Classification metrics computed from logits, accumulable over mini-batches."""
from __future__ import annotations

import numpy as np


def _labels_from_target(target, num_classes: int):
    """Integer labels from integer targets or one-hot/probability targets (class axis 1)."""
    target = np.asarray(target)
    if target.dtype.kind in "iub":
        return target.astype(np.int64, copy=False)
    if target.ndim >= 2 and target.shape[1] == num_classes:
        return target.argmax(axis=1)
    raise ValueError(
        f"accuracy: target must be integer labels or one-hot with {num_classes} classes on axis 1, "
        f"got dtype {target.dtype} shape {target.shape}"
    )


def correct_count(logits, target, ignore_index: int | None = None, k: int = 1) -> tuple[int, int]:
    """Return ``(correct, counted)`` for top-``k`` accuracy.

    ``logits`` is ``(N, K)`` or ``(N, K, d1, ...)`` (segmentation: per pixel);
    ``target`` holds integer labels ``(N,)``/``(N, d1, ...)`` or one-hot/soft
    labels shaped like ``logits``. Elements equal to ``ignore_index`` are not counted.
    """
    logits = np.asarray(logits)
    if logits.ndim < 2:
        raise ValueError(f"accuracy: logits must be (N, K, ...), got shape {logits.shape}")
    labels = _labels_from_target(target, logits.shape[1])
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"accuracy: labels shape {labels.shape} does not match logits {logits.shape} "
            f"(expected {logits.shape[:1] + logits.shape[2:]})"
        )
    valid = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    if k == 1:
        hit = logits.argmax(axis=1) == labels
    else:
        topk = np.argpartition(-logits, kth=min(k, logits.shape[1]) - 1, axis=1)[:, :k]
        hit = (topk == np.expand_dims(labels, 1)).any(axis=1)
    return int(np.count_nonzero(hit & valid)), int(np.count_nonzero(valid))


def accuracy(logits, target, ignore_index: int | None = None, k: int = 1) -> float:
    """Top-``k`` accuracy in [0, 1] (see ``correct_count`` for shapes)."""
    correct, count = correct_count(logits, target, ignore_index, k)
    return correct / count if count else float("nan")
