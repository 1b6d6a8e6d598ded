"""Colour transforms: saturation, hue, ColorJitter, grayscale (RGB; RGBA keeps its alpha).

Single-channel images have no colour: saturation and hue leave them as they
are. Grey is ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``, as in
torchvision and Pillow.
"""
from __future__ import annotations

import numpy as np

from core.augment.base import Transform, check_range, uniform
from core.augment.pixel import _from_float, _to_float
from core.augment.registry import register

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _has_color(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[2] >= 3


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 -> (H, W, 1) luma."""
    return (rgb @ LUMA)[..., None]


def _finish(rgb_float: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Put processed float RGB back into ``image``'s dtype, keeping any alpha channel."""
    out = np.empty_like(image)
    out[..., :3] = _from_float(rgb_float, image)
    if image.shape[2] == 4:
        out[..., 3] = image[..., 3]
    return out


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    s = np.where(v > 0, c / np.where(v > 0, v, 1), 0)
    safe = np.where(c > 0, c, 1)
    h = np.where(v == r, ((g - b) / safe) % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = np.where(c > 0, h / 6.0, 0.0)
    return np.stack([h, s, v], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    k = (np.stack([5.0, 3.0, 1.0]).reshape((3,) + (1,) * h.ndim) + h * 6.0) % 6  # (3, ...)
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    return np.moveaxis(rgb, 0, -1).astype(np.float32)


def adjust_saturation(rgb: np.ndarray, factor: float) -> np.ndarray:
    grey = _luma(rgb)
    return grey + np.float32(factor) * (rgb - grey)


def adjust_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    hsv = rgb_to_hsv(np.clip(rgb, 0, 1))
    hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
    return hsv_to_rgb(hsv)


@register
class Saturation(Transform):
    """Blend with the grey image by ``1 + s``, ``s`` drawn from ``limit`` (0 = unchanged, -1 = grey)."""

    def __init__(self, limit=0.2, p: float = 1.0):
        super().__init__(p)
        self.limit = limit
        self._limit = check_range(limit, "Saturation", "limit", low=-1.0)

    def sample_params(self, rng, shape):
        return {"factor": 1.0 + uniform(rng, self._limit)}

    def apply(self, image, factor):
        if not _has_color(image):
            return image.copy()
        return _finish(adjust_saturation(_to_float(image[..., :3]), factor), image)


@register
class Hue(Transform):
    """Rotate the hue by ``h`` drawn from ``limit`` (a fraction of the colour circle, |h| <= 0.5)."""

    def __init__(self, limit=0.05, p: float = 1.0):
        super().__init__(p)
        self.limit = limit
        self._limit = check_range(limit, "Hue", "limit", low=-0.5, high=0.5)

    def sample_params(self, rng, shape):
        return {"shift": uniform(rng, self._limit)}

    def apply(self, image, shift):
        if not _has_color(image):
            return image.copy()
        return _finish(adjust_hue(_to_float(image[..., :3]), shift), image)


@register
class ColorJitter(Transform):
    """torchvision's ColorJitter: brightness, contrast, saturation and hue in a random order.

    Factors are drawn from ``[max(0, 1 - v), 1 + v]`` for brightness (multiply),
    contrast (blend with the mean grey level) and saturation (blend with grey);
    hue shifts by ``[-hue, hue]`` of the colour circle. Values are clipped to
    the valid range after every step, as torchvision does.
    """

    def __init__(self, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p: float = 1.0):
        super().__init__(p)
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self._ranges = {}
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if isinstance(value, (tuple, list)):  # explicit factor range
                self._ranges[name] = check_range(value, "ColorJitter", name, low=0.0)
            else:
                lo, hi = check_range(value, "ColorJitter", name)
                self._ranges[name] = (max(0.0, 1.0 + lo), 1.0 + hi)
        self._ranges["hue"] = check_range(hue, "ColorJitter", "hue", low=-0.5, high=0.5)

    def sample_params(self, rng, shape):
        order = [int(i) for i in rng.permutation(4)]
        values = {name: uniform(rng, self._ranges[name]) for name in ("brightness", "contrast", "saturation", "hue")}
        return {"order": order, **values}

    def apply(self, image, order, brightness, contrast, saturation, hue):
        color = _has_color(image)
        c = 3 if color else (image.shape[2] if image.ndim == 3 else 1)
        x = _to_float(image[..., :c] if image.ndim == 3 else image)
        for step in order:
            if step == 0:
                x = np.clip(x * np.float32(brightness), 0, 1)
            elif step == 1:
                grey_mean = float((_luma(x) if color else x).mean())
                x = np.clip(grey_mean + np.float32(contrast) * (x - grey_mean), 0, 1)
            elif step == 2 and color:
                x = np.clip(adjust_saturation(x, saturation), 0, 1)
            elif step == 3 and color and hue != 0.0:
                x = adjust_hue(x, hue)
        if color:
            return _finish(x, image)
        return _from_float(x, image)


@register
class Grayscale(Transform):
    """Replace colour by luma; the channel count is kept (grey repeated in R, G, B)."""

    def __init__(self, p: float = 1.0):
        super().__init__(p)

    def apply(self, image):
        if not _has_color(image):
            return image.copy()
        grey = _luma(_to_float(image[..., :3]))
        return _finish(np.broadcast_to(grey, image.shape[:2] + (3,)), image)
