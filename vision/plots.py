"""Figures for image classifiers: confusion matrix, misclassified gallery, first-layer filters, HPO scatter.

Like ``core.plots`` every figure is drawn on a ``matplotlib.figure.Figure``
with the Agg canvas (never ``pyplot``) and written atomically as PNG.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from core.serialization import atomic_write_bytes

__all__ = ["plot_confusion_matrix", "plot_misclassified", "plot_filters", "plot_hpo_scatter", "filter_grid"]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi: int = 100) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_confusion_matrix(cm, classes, path, normalize: bool = True, title: str | None = None) -> Path:
    """Heat map of a ``(K, K)`` confusion matrix (rows true, columns predicted), saved as PNG.

    ``normalize=True`` colours and labels each cell by the fraction of its row
    (the per-class recall on the diagonal); the counts are always printed too
    when ``K <= 20``.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square (K, K) matrix, got shape {cm.shape}")
    k = cm.shape[0]
    classes = [str(c) for c in classes]
    if len(classes) != k:
        raise ValueError(f"plot_confusion_matrix: {len(classes)} class names for a {k}x{k} matrix")
    rows = cm.sum(axis=1, keepdims=True)
    shown = cm / np.maximum(rows, 1) if normalize else cm
    size = max(4.5, 0.55 * k + 2.5)
    fig = _new_figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(k), classes, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        cutoff = shown.max() / 2 if shown.size else 0
        for i in range(k):
            for j in range(k):
                text = f"{shown[i, j]:.2f}\n{cm[i, j]}" if normalize else f"{cm[i, j]}"
                ax.text(j, i, text, ha="center", va="center", fontsize=6 if k > 10 else 7,
                        color="white" if shown[i, j] > cutoff else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {100 * acc:.2f}%)")
    return _save(fig, path)


def _display_image(img):
    """``(H, W, C)`` / ``(C, H, W)`` / ``(H, W)`` -> something ``imshow`` draws, plus its colour map."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img, ("gray" if img.ndim == 2 else None)


def plot_misclassified(images, y_true, y_pred, classes, path, probs=None, max_images: int = 36,
                       columns: int = 6, title: str | None = None) -> Path:
    """Gallery of misclassified images, each titled ``true -> predicted`` (with the probability when given).

    Args:
        images: uint8 ``(N, H, W, C)`` (or ``(N, C, H, W)`` floats) for all samples.
        y_true, y_pred: labels ``(N,)``; only the samples where they differ are shown,
            the most confident mistakes first when ``probs`` ``(N, K)`` is given.
        max_images, columns: the grid size.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(images) != len(y_true) or len(y_true) != len(y_pred):
        raise ValueError(f"plot_misclassified: {len(images)} images, {len(y_true)} true and {len(y_pred)} "
                         "predicted labels must all match")
    wrong = np.flatnonzero(y_true != y_pred)
    confidence = None
    if probs is not None:
        probs = np.asarray(probs)
        confidence = probs[np.arange(len(y_pred)), y_pred]
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    wrong = wrong[:max_images]
    columns = max(1, min(columns, len(wrong))) if len(wrong) else 1
    rows = max(1, math.ceil(len(wrong) / columns))
    fig = _new_figure(1.9 * columns, 2.1 * rows + 0.4)
    if not len(wrong):
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for k, i in enumerate(wrong):
        ax = fig.add_subplot(rows, columns, k + 1)
        img, cmap = _display_image(images[i])
        ax.imshow(img, cmap=cmap)
        label = f"{classes[int(y_true[i])]}\n-> {classes[int(y_pred[i])]}"
        if confidence is not None:
            label += f" ({100 * confidence[i]:.0f}%)"
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    fig.suptitle(title or f"misclassified: {int((y_true != y_pred).sum())} of {len(y_true)} (true -> predicted)",
                 fontsize="small")
    return _save(fig, path)


def filter_grid(weight, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile conv filters ``(O, C, kh, kw)`` into one image, each filter min-max scaled to [0, 1].

    ``C`` of 3 gives an RGB grid ``(H, W, 3)``; otherwise the channels are
    averaged into a grey ``(H, W)`` grid. Gaps between tiles are white (1).
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: expected conv weights (O, C, kh, kw), got shape {w.shape}")
    o, c, kh, kw = w.shape
    tiles = w.transpose(0, 2, 3, 1) if c == 3 else w.mean(axis=1)[..., None]
    lo = tiles.reshape(o, -1).min(axis=1).reshape(o, 1, 1, 1)
    hi = tiles.reshape(o, -1).max(axis=1).reshape(o, 1, 1, 1)
    tiles = (tiles - lo) / np.where(hi > lo, hi - lo, 1.0)
    columns = columns or math.ceil(math.sqrt(o))
    rows = math.ceil(o / columns)
    ch = tiles.shape[-1]
    grid = np.ones((rows * (kh + pad) + pad, columns * (kw + pad) + pad, ch))
    for k in range(o):  # a few dozen tiles: the loop is over filters, not pixels
        r, q = divmod(k, columns)
        grid[pad + r * (kh + pad):pad + r * (kh + pad) + kh, pad + q * (kw + pad):pad + q * (kw + pad) + kw] = tiles[k]
    return grid if ch == 3 else grid[..., 0]


def plot_filters(weight, path, title: str | None = None, columns: int | None = None) -> Path:
    """The first convolution's filters as an image (the book's ch. 7.6.1 figure), saved as PNG."""
    grid = filter_grid(weight, columns)
    h, w = grid.shape[:2]
    scale = 4.0 / max(h, w)
    fig = _new_figure(max(2.5, w * scale * 1.3), max(2.5, h * scale * 1.3) + 0.3)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap="gray_r" if grid.ndim == 2 else None, interpolation="nearest", vmin=0, vmax=1)
    ax.axis("off")
    o, _, kh, kw = np.shape(weight)
    ax.set_title(title or f"first conv layer: {o} filters of {kh}x{kw}", fontsize="small")
    return _save(fig, path)


def plot_hpo_scatter(trials, path, x: str = "lr", y: str = "weight_decay", metric: str = "val_accuracy",
                     title: str | None = None) -> Path:
    """Scatter of ``metric`` (colour) over two hyper-parameters on log axes; the best trial is starred.

    ``trials``: dicts holding ``x``, ``y`` and ``metric`` (failed trials with a
    missing/NaN metric are drawn as grey crosses).
    """
    trials = list(trials)
    if not trials:
        raise ValueError("plot_hpo_scatter: no trials to plot")
    for i, t in enumerate(trials):
        if x not in t or y not in t:
            raise ValueError(f"plot_hpo_scatter: trial {i} lacks {x!r} or {y!r}; keys: {sorted(t)}")
    xs = np.array([float(t[x]) for t in trials])
    ys = np.array([float(t[y]) for t in trials])
    ms = np.array([float(t.get(metric, np.nan)) if t.get(metric) is not None else np.nan for t in trials])
    ok = np.isfinite(ms)
    fig = _new_figure(6.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    if ok.any():
        sc = ax.scatter(xs[ok], ys[ok], c=ms[ok], cmap="viridis", s=50, edgecolors="k", linewidths=0.4)
        fig.colorbar(sc, ax=ax, label=metric)
        b = int(np.flatnonzero(ok)[np.argmax(ms[ok])])
        ax.scatter([xs[b]], [ys[b]], marker="*", s=260, c="red", edgecolors="k",
                   label=f"best {metric} {ms[b]:.4f}")
        ax.legend(fontsize="small", loc="best")
    if (~ok).any():
        ax.scatter(xs[~ok], ys[~ok], marker="x", c="grey", label="failed")
    if (xs > 0).all():
        ax.set_xscale("log")
    if (ys > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, alpha=0.3, which="both")
    ax.set_title(title or f"{metric} of {len(trials)} trials")
    return _save(fig, path)
