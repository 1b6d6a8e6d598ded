"""Bounding boxes and keypoints: formats, validation, transforming, clipping, filtering.

Internally a box is pascal_voc ``[x_min, y_min, x_max, y_max]`` in absolute
continuous pixel coordinates (a box ``[0, 0, W, H]`` covers the whole image;
pixel column ``j`` spans ``[j, j+1)``). Supported external formats:

- ``"pascal_voc"``: ``x_min, y_min, x_max, y_max`` in pixels;
- ``"coco"``: ``x_min, y_min, width, height`` in pixels;
- ``"yolo"``: ``x_center, y_center, width, height`` divided by the image size.

Keypoints are ``(K, 2)`` ``(x, y)`` in the same continuous coordinates (the
centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``); extra columns pass
through untouched.
"""
from __future__ import annotations

import numpy as np

BOX_FORMATS = ("pascal_voc", "coco", "yolo")


def check_box_format(fmt: str, where: str) -> str:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"{where}: box_format must be one of {', '.join(BOX_FORMATS)}, got {fmt!r}")
    return fmt


def boxes_to_voc(boxes, fmt: str, shape, where: str) -> np.ndarray:
    """Convert ``boxes`` ``(N, 4)`` from ``fmt`` to absolute pascal_voc float64."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape (N, 4), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: boxes must be finite, got {arr[~np.isfinite(arr).all(axis=1)][0].tolist()}")
    h, w = shape
    if fmt == "pascal_voc":
        out = arr.copy()
    elif fmt == "coco":
        out = np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:]], axis=1)
    else:  # yolo
        scale = np.array([w, h, w, h], dtype=np.float64)
        centre, size = arr[:, :2], arr[:, 2:]
        out = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * scale
    bad = np.flatnonzero((out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1]))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{where}: boxes[{i}] = {arr[i].tolist()} ({fmt}) has zero or negative width/height")
    return out


def voc_to_boxes(voc: np.ndarray, fmt: str, shape) -> np.ndarray:
    """Inverse of ``boxes_to_voc`` for the final image ``shape``."""
    if fmt == "pascal_voc":
        return voc
    if fmt == "coco":
        return np.concatenate([voc[:, :2], voc[:, 2:] - voc[:, :2]], axis=1)
    h, w = shape
    centre = (voc[:, :2] + voc[:, 2:]) / 2
    size = voc[:, 2:] - voc[:, :2]
    return np.concatenate([centre, size], axis=1) / np.array([w, h, w, h], dtype=np.float64)


def check_inside(voc: np.ndarray, shape, where: str, tol: float = 1e-6) -> None:
    """Strict mode: every box must lie inside the image."""
    h, w = shape
    outside = (voc[:, 0] < -tol) | (voc[:, 1] < -tol) | (voc[:, 2] > w + tol) | (voc[:, 3] > h + tol)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{where}: boxes[{i}] = {voc[i].tolist()} (pascal_voc) lies outside the "
                         f"{w}x{h} image (strict_boxes=True)")


def transform_boxes(voc: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding boxes of the transformed box corners ``(N, 4)``."""
    if len(voc) == 0:
        return voc
    x0, y0, x1, y1 = voc.T
    corners = np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1),
                        np.stack([x0, y1], -1), np.stack([x1, y1], -1)], axis=1)  # (N, 4, 2)
    moved = corners @ matrix[:2, :2].T + matrix[:2, 2]
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)


def clip_and_filter(voc: np.ndarray, shape, min_area: float, min_visibility: float):
    """Clip boxes to the image; return ``(boxes, keep)`` where ``keep`` indexes the survivors.

    A box survives when its clipped area is positive, at least ``min_area``
    pixels, and at least ``min_visibility`` of its unclipped area.
    """
    if len(voc) == 0:
        return voc, np.zeros(0, dtype=np.intp)
    h, w = shape
    area = (voc[:, 2] - voc[:, 0]) * (voc[:, 3] - voc[:, 1])
    clipped = np.clip(voc, 0, [w, h, w, h])
    new_area = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)
    keep = (new_area > 0) & (new_area >= min_area) & (new_area >= min_visibility * area - 1e-9)
    idx = np.flatnonzero(keep)
    return clipped[idx], idx


def check_keypoints(keypoints, where: str) -> np.ndarray:
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{where}: keypoints must have shape (K, 2) or (K, 2 + extra), got {arr.shape}")
    return arr.copy()


def transform_keypoints(kps: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    if len(kps) == 0:
        return kps
    out = kps.copy()
    out[:, :2] = kps[:, :2] @ matrix[:2, :2].T + matrix[:2, 2]
    return out


def visible_keypoints(kps: np.ndarray, shape) -> np.ndarray:
    """Indices of keypoints inside ``[0, W) x [0, H)``."""
    h, w = shape
    inside = (kps[:, 0] >= 0) & (kps[:, 0] < w) & (kps[:, 1] >= 0) & (kps[:, 1] < h)
    return np.flatnonzero(inside)
