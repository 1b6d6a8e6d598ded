"""Classification metrics: confusion matrix, per-class accuracy/precision/recall, top-k, and a text table.

Rows of a confusion matrix are true classes, columns predicted classes
(scikit-learn's convention): ``cm[i, j]`` counts samples of class ``i``
predicted as ``j``. Per-class accuracy is the recall ``cm[i, i] / cm[i].sum()``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["confusion_matrix", "per_class_accuracy", "ClassReport", "classification_report",
           "format_class_table", "top_k_accuracy"]


def _labels(values, name: str, num_classes: int, where: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be a 1-d array of class indices, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{where}: {name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = arr[(arr < 0) | (arr >= num_classes)]
        raise ValueError(f"{where}: {name} holds labels outside [0, {num_classes}): e.g. {bad[:5].tolist()}")
    return arr


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``(K, K)`` int64: row = true class, column = predicted class.

    Args:
        y_true, y_pred: integer labels ``(N,)``.
        num_classes: ``K``; default ``max(label) + 1`` over both arrays.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: y_true {t.shape} and y_pred {p.shape} must have the same shape")
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"confusion_matrix: num_classes must be a positive int, got {num_classes!r}")
    t = _labels(t, "y_true", num_classes, "confusion_matrix")
    p = _labels(p, "y_pred", num_classes, "confusion_matrix")
    # One bincount over the flattened (true, pred) pair index: no loop over samples.
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm) -> np.ndarray:
    """Recall of each class ``cm[i, i] / cm[i].sum()`` (NaN for a class with no samples)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"per_class_accuracy: expected a square (K, K) confusion matrix, got shape {cm.shape}")
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


class ClassReport(NamedTuple):
    """Per-class figures (arrays ``(K,)``) and the overall accuracy."""

    classes: list
    support: np.ndarray
    accuracy: np.ndarray  # recall
    precision: np.ndarray
    f1: np.ndarray
    overall: float


def classification_report(cm, classes=None) -> ClassReport:
    """Support, accuracy (recall), precision and F1 per class from a confusion matrix."""
    cm = np.asarray(cm)
    recall = per_class_accuracy(cm)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, np.diag(cm) / np.maximum(predicted, 1), np.nan)
        f1 = 2 * precision * recall / (precision + recall)
    k = cm.shape[0]
    classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(classes) != k:
        raise ValueError(f"classification_report: {len(classes)} class names for a {k}x{k} confusion matrix")
    total = cm.sum()
    overall = float(np.trace(cm) / total) if total else float("nan")
    return ClassReport(classes, cm.sum(axis=1), recall, precision, f1, overall)


def format_class_table(report: ClassReport) -> str:
    """The report as a fixed-width text table (percentages), one row per class plus the overall line."""
    width = max(5, *(len(c) for c in report.classes))
    lines = [f"{'class'.ljust(width)}  {'support':>7}  {'accuracy':>8}  {'precision':>9}  {'f1':>6}"]
    def pct(value, digits, width_):
        return f"{100 * value:{width_}.{digits}f}%" if np.isfinite(value) else "-".rjust(width_ + 1)

    for name, n, acc, prec, f1 in zip(report.classes, report.support, report.accuracy, report.precision,
                                      report.f1):
        lines.append(f"{name.ljust(width)}  {int(n):7d}  {pct(acc, 2, 7)}  {pct(prec, 2, 8)}  {pct(f1, 1, 5)}")
    lines.append(f"{'overall'.ljust(width)}  {int(report.support.sum()):7d}  {100 * report.overall:7.2f}%")
    return "\n".join(lines)


def top_k_accuracy(scores, y_true, k: int = 1) -> float:
    """Fraction of samples whose true class is among the ``k`` highest ``scores`` ``(N, K)``."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"top_k_accuracy: scores must be (N, K), got shape {scores.shape}")
    y = _labels(y_true, "y_true", scores.shape[1], "top_k_accuracy")
    if len(y) != len(scores):
        raise ValueError(f"top_k_accuracy: {len(scores)} score rows but {len(y)} labels")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"top_k_accuracy: k must be in [1, {scores.shape[1]}], got {k}")
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean((top == y[:, None]).any(axis=1))) if len(y) else float("nan")
