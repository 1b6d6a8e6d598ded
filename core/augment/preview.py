"""Preview grids: each row an original followed by its augmentations, masks overlaid.

Label 0 is treated as background; other labels are tinted with a fixed
palette at ``alpha`` opacity so misaligned masks are visible at a glance.
"""
from __future__ import annotations

import numpy as np

#: tint colours for labels 1, 2, ... (cycled)
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230]], dtype=np.float32)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W[, C]) -> (H, W, 3) for display (alpha composited on mid-grey)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        a = image[..., 3:4].astype(np.float32) / 255.0
        return np.rint(image[..., :3] * a + 128.0 * (1 - a)).astype(np.uint8)
    return image


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.3) -> np.ndarray:
    """Tint the non-zero labels of ``mask`` over ``image`` and outline every label boundary.

    Returns (H, W, 3) uint8. The outlines (label changes between 4-neighbours)
    make a shifted mask obvious even where the tint is faint.
    """
    rgb = to_rgb(image).astype(np.float32)
    labels = mask if mask.ndim == 2 else mask.reshape(mask.shape[0], mask.shape[1], -1).max(axis=2)
    labels = labels.astype(np.int64)
    fg = labels != 0
    if fg.any():
        colors = PALETTE[(labels[fg] - 1) % len(PALETTE)]
        rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colors
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    if edge.any():
        rgb[edge] = PALETTE[(np.maximum(labels[edge], 1) - 1) % len(PALETTE)]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Fit (H, W, 3) uint8 into a ``size x size`` cell (aspect kept, centred on white)."""
    from PIL import Image

    h, w = image.shape[:2]
    s = size / max(h, w)
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    small = np.asarray(Image.fromarray(image).resize((tw, th), Image.Resampling.LANCZOS))
    cell = np.full((size, size, 3), 255, np.uint8)
    top, left = (size - th) // 2, (size - tw) // 2
    cell[top:top + th, left:left + tw] = small
    return cell


def make_grid(rows, cell: int = 160, gap: int = 4) -> np.ndarray:
    """Tile ``rows`` (lists of (image, mask or None)) into one (H, W, 3) uint8 picture.

    The first entry of a row is the original; a wider gap separates it from
    the augmented copies.
    """
    if not rows:
        raise ValueError("make_grid: rows must not be empty")
    ncols = max(len(r) for r in rows)
    height = len(rows) * cell + (len(rows) + 1) * gap
    width = ncols * cell + (ncols + 2) * gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y = gap + r * (cell + gap)
        for c, (image, mask) in enumerate(row):
            x = gap + c * (cell + gap) + (gap if c > 0 else 0)
            shown = overlay_mask(image, mask) if mask is not None else to_rgb(image)
            canvas[y:y + cell, x:x + cell] = thumbnail(shown, cell)
    return canvas
