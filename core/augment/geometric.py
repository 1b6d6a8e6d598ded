"""Geometric transforms: flips, rotate, affine, crops, resize, pad.

Each one describes itself as a 3x3 forward matrix on continuous coordinates
(see ``warp.py``) plus an output shape. ``Compose`` multiplies the matrices
of consecutive geometric transforms and resamples the image and masks once;
boxes and keypoints are moved by the same matrices (and clipped after every
step, as if the transforms ran one by one).

Every transform here fuses with its neighbours when their sampling settings
agree: ``interpolation`` (None = moves whole pixels only) and ``border`` /
``fill`` / ``fill_mask`` (``border=None`` = never samples outside the image).
"""
from __future__ import annotations

import math

import numpy as np

from core.augment import warp
from core.augment.base import Transform, check_positive_int, check_range, uniform, uniforms
from core.augment.registry import register


class GeometricTransform(Transform):
    """A transform that moves pixels: the image, masks, boxes and keypoints move together.

    Subclasses implement ``matrix(params, shape) -> (3x3 forward matrix, (out_h, out_w))``.
    """

    kind = "geometric"
    interpolation: str | None = None
    border: str | None = None
    fill = 0
    fill_mask = 0

    def matrix(self, params: dict, shape):
        raise NotImplementedError(f"{type(self).__name__} must implement matrix()")

    def output_shape(self, shape, params: dict):
        return self.matrix(params, shape)[1]

    def warp_settings(self):
        """``(interpolation, border, fill, fill_mask)``; None entries fuse with anything."""
        border = self.border
        fills = (_freeze(self.fill), _freeze(self.fill_mask)) if border == "constant" else (None, None)
        return (self.interpolation, border) + fills

    def apply(self, image, **params):
        m, out_shape = self.matrix(params, image.shape[:2])
        return warp.warp_image(image, m, out_shape, self.interpolation or "bilinear",
                               self.border or "edge", image_fill(self.fill, image.dtype))

    def apply_to_mask(self, mask, **params):
        m, out_shape = self.matrix(params, mask.shape[:2])
        return warp.warp_mask(mask, m, out_shape, self.border or "edge", self.fill_mask)


def image_fill(fill, dtype):
    """``fill`` is given in 0-255 units so a pipeline means the same on uint8 and float images."""
    return fill if np.dtype(dtype) == np.uint8 else np.asarray(fill, dtype=np.float64) / 255.0


def _freeze(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # the common case, without numpy
        return (float(v),)
    return tuple(np.asarray(v, dtype=np.float64).reshape(-1).tolist())


def _check_sampling(t, interpolation, border, fill, fill_mask):
    where = type(t).__name__
    t.interpolation = warp.check_interpolation(interpolation, where)
    t.border = warp.check_border(border, where)
    for name, value in (("fill", fill), ("fill_mask", fill_mask)):
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf" or arr.ndim > 1 or arr.size not in (1, 3, 4) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: {name} must be a number or one per channel, got {value!r}")
    t.fill, t.fill_mask = fill, fill_mask


def _about_centre(shape, linear, shift=(0.0, 0.0)) -> np.ndarray:
    """``translation(centre + shift) @ linear @ translation(-centre)`` for a 2x2 ``linear``
    ``((a, b), (d, e))``, multiplied out: it runs for every image, where five small
    numpy products cost more than the warp's setup."""
    h, w = shape
    (a, b), (d, e) = linear
    cx, cy = w / 2, h / 2
    return np.array([[a, b, cx + shift[0] - a * cx - b * cy],
                     [d, e, cy + shift[1] - d * cx - e * cy],
                     [0.0, 0.0, 1.0]])


def _rotation_shear_scale(degrees: float, shear_degrees: float = 0.0, scale: float = 1.0):
    """The 2x2 of ``rotation(degrees) @ shearing(shear_degrees) @ scaling(scale, scale)``."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    k = math.tan(math.radians(shear_degrees))
    return (scale * c, scale * (c * k + s)), (-scale * s, scale * (c - s * k))


@register
class HorizontalFlip(GeometricTransform):
    """Mirror left-right: ``x -> W - x``."""

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def matrix(self, params, shape):
        h, w = shape
        return np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), (h, w)


@register
class VerticalFlip(GeometricTransform):
    """Mirror top-bottom: ``y -> H - y``."""

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def matrix(self, params, shape):
        h, w = shape
        return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, h], [0.0, 0.0, 1.0]]), (h, w)


@register
class Rotate(GeometricTransform):
    """Rotate about the image centre by an angle drawn from ``limit`` degrees (counter-clockwise).

    Args:
        limit: ``a`` for ``(-a, a)`` or a ``(low, high)`` range in degrees.
        interpolation: "bilinear" or "nearest" (masks always use nearest).
        border: "constant", "edge", "reflect" or "symmetric".
        fill / fill_mask: constant values for the image (0-255 units, scaled for float
            images; one number or one per channel) / for masks (label value).
    """

    def __init__(self, limit=15.0, interpolation: str = "bilinear", border: str = "constant",
                 fill=0, fill_mask=0, p: float = 1.0):
        super().__init__(p)
        self.limit = limit
        self._limit = check_range(limit, "Rotate", "limit")
        _check_sampling(self, interpolation, border, fill, fill_mask)

    def sample_params(self, rng, shape):
        return {"angle": uniform(rng, self._limit)}

    def matrix(self, params, shape):
        return _about_centre(shape, _rotation_shear_scale(params["angle"])), tuple(shape)


@register
class Affine(GeometricTransform):
    """Scale, rotate, shear and translate about the image centre in one matrix.

    Args:
        scale: zoom factor, a number or a ``(low, high)`` range (1.0 = unchanged).
        translate: shift as a fraction of width/height: ``t`` for ``(-t, t)`` or a range;
            drawn independently for x and y.
        rotate: degrees, ``a`` for ``(-a, a)`` or a range.
        shear: x-shear in degrees, ``s`` for ``(-s, s)`` or a range.
        interpolation, border, fill, fill_mask: as in ``Rotate``.
    """

    def __init__(self, scale=1.0, translate=0.0, rotate=0.0, shear=0.0, interpolation: str = "bilinear",
                 border: str = "constant", fill=0, fill_mask=0, p: float = 1.0):
        super().__init__(p)
        self.scale, self.translate, self.rotate, self.shear = scale, translate, rotate, shear
        self._scale = check_range(scale, "Affine", "scale", symmetric_about=None, low=1e-3)
        self._translate = check_range(translate, "Affine", "translate", low=-1.0, high=1.0)
        self._rotate = check_range(rotate, "Affine", "rotate")
        self._shear = check_range(shear, "Affine", "shear", low=-80.0, high=80.0)
        _check_sampling(self, interpolation, border, fill, fill_mask)

    def sample_params(self, rng, shape):
        scale, tx, ty, angle, shear = uniforms(rng, self._scale, self._translate, self._translate,
                                               self._rotate, self._shear)
        return {"scale": scale, "tx": tx, "ty": ty, "angle": angle, "shear": shear}

    def matrix(self, params, shape):
        h, w = shape
        linear = _rotation_shear_scale(params["angle"], params["shear"], params["scale"])
        return _about_centre(shape, linear, (params["tx"] * w, params["ty"] * h)), (h, w)


def _check_crop_fits(where: str, shape, height: int, width: int):
    h, w = shape
    if height > h or width > w:
        raise ValueError(f"{where}: crop {height}x{width} (height x width) is larger than the {h}x{w} image; "
                         f"put PadIfNeeded(min_height={height}, min_width={width}) before it")


@register
class RandomCrop(GeometricTransform):
    """Cut a ``height x width`` window at a uniformly random position (exact pixels)."""

    def __init__(self, height: int, width: int, p: float = 1.0):
        super().__init__(p)
        self.height = check_positive_int(height, "RandomCrop", "height")
        self.width = check_positive_int(width, "RandomCrop", "width")

    def sample_params(self, rng, shape):
        _check_crop_fits("RandomCrop", shape, self.height, self.width)
        h, w = shape
        # Stored as the centre of the chosen cell of the free range, so int(frac * n)
        # gives back the same offset and the record replays on other sizes.
        top = int(rng.integers(0, h - self.height + 1))
        left = int(rng.integers(0, w - self.width + 1))
        return {"y": (top + 0.5) / (h - self.height + 1), "x": (left + 0.5) / (w - self.width + 1)}

    def matrix(self, params, shape):
        _check_crop_fits("RandomCrop", shape, self.height, self.width)
        h, w = shape
        top = min(int(params["y"] * (h - self.height + 1)), h - self.height)
        left = min(int(params["x"] * (w - self.width + 1)), w - self.width)
        return warp.translation(-left, -top), (self.height, self.width)


@register
class CenterCrop(GeometricTransform):
    """Cut the central ``height x width`` window (offsets rounded down, like ``(H - h) // 2``)."""

    def __init__(self, height: int, width: int, p: float = 1.0):
        super().__init__(p)
        self.height = check_positive_int(height, "CenterCrop", "height")
        self.width = check_positive_int(width, "CenterCrop", "width")

    def matrix(self, params, shape):
        _check_crop_fits("CenterCrop", shape, self.height, self.width)
        h, w = shape
        return warp.translation(-((w - self.width) // 2), -((h - self.height) // 2)), (self.height, self.width)


@register
class RandomResizedCrop(GeometricTransform):
    """Crop a random area/aspect-ratio window and resize it to ``height x width`` (Inception-style).

    Follows torchvision: up to 10 draws of area fraction ``scale`` and
    log-uniform aspect ``ratio`` (w/h); if none fits, the central crop with the
    ratio clamped to ``ratio``.
    """

    def __init__(self, height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation: str = "bilinear", p: float = 1.0):
        super().__init__(p)
        self.height = check_positive_int(height, "RandomResizedCrop", "height")
        self.width = check_positive_int(width, "RandomResizedCrop", "width")
        self.scale, self.ratio = scale, ratio
        self._scale = check_range(scale, "RandomResizedCrop", "scale", symmetric_about=None, low=1e-6, high=1.0)
        self._ratio = check_range(ratio, "RandomResizedCrop", "ratio", symmetric_about=None, low=1e-6)
        self.interpolation = warp.check_interpolation(interpolation, "RandomResizedCrop")

    def sample_params(self, rng, shape):
        h, w = shape
        area = h * w
        lo, hi = math.log(self._ratio[0]), math.log(self._ratio[1])
        draws = rng.random(20).tolist()  # 10 attempts x (area, ratio), in one call
        for attempt in range(10):
            target = area * (self._scale[0] + (self._scale[1] - self._scale[0]) * draws[2 * attempt])
            ratio = math.exp(lo + (hi - lo) * draws[2 * attempt + 1])
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(rng.integers(0, h - ch + 1))
                left = int(rng.integers(0, w - cw + 1))
                break
        else:
            in_ratio = w / h
            if in_ratio < self._ratio[0]:
                cw, ch = w, int(round(w / self._ratio[0]))
            elif in_ratio > self._ratio[1]:
                ch, cw = h, int(round(h * self._ratio[1]))
            else:
                cw, ch = w, h
            top, left = (h - ch) // 2, (w - cw) // 2
        return {"x": left / w, "y": top / h, "w": cw / w, "h": ch / h}

    def matrix(self, params, shape):
        h, w = shape
        x0, y0, cw, ch = params["x"] * w, params["y"] * h, params["w"] * w, params["h"] * h
        sx, sy = self.width / cw, self.height / ch  # scaling(sx, sy) @ translation(-x0, -y0)
        return np.array([[sx, 0.0, -sx * x0], [0.0, sy, -sy * y0], [0.0, 0.0, 1.0]]), (self.height, self.width)


@register
class Resize(GeometricTransform):
    """Resize to ``height x width``; with ``keep_aspect`` fit inside that box keeping the aspect ratio."""

    def __init__(self, height: int, width: int, keep_aspect: bool = False, interpolation: str = "bilinear",
                 p: float = 1.0):
        super().__init__(p)
        self.height = check_positive_int(height, "Resize", "height")
        self.width = check_positive_int(width, "Resize", "width")
        if not isinstance(keep_aspect, bool):
            raise TypeError(f"Resize: keep_aspect must be True or False, got {keep_aspect!r}")
        self.keep_aspect = keep_aspect
        self.interpolation = warp.check_interpolation(interpolation, "Resize")

    def matrix(self, params, shape):
        h, w = shape
        if self.keep_aspect:
            s = min(self.height / h, self.width / w)
            oh, ow = max(1, int(round(h * s))), max(1, int(round(w * s)))
        else:
            oh, ow = self.height, self.width
        return warp.scaling(ow / w, oh / h), (oh, ow)


def _padding_tuple(padding, where: str):
    """int -> all sides; (horizontal, vertical); (left, top, right, bottom)."""
    values = [padding] if isinstance(padding, (int, np.integer)) else list(padding) \
        if isinstance(padding, (list, tuple)) else None
    if values is None or len(values) not in (1, 2, 4) or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in values):
        raise ValueError(f"{where}: padding must be an int >= 0, (horizontal, vertical) or "
                         f"(left, top, right, bottom), got {padding!r}")
    if len(values) == 1:
        values = values * 4
    elif len(values) == 2:
        values = values * 2
    return tuple(int(v) for v in values)


@register
class Pad(GeometricTransform):
    """Add a border: ``padding`` as an int, ``(horizontal, vertical)`` or ``(left, top, right, bottom)``."""

    def __init__(self, padding=0, border: str = "constant", fill=0, fill_mask=0, p: float = 1.0):
        super().__init__(p)
        self.padding = padding
        self._pad = _padding_tuple(padding, "Pad")
        _check_sampling(self, "bilinear", border, fill, fill_mask)
        self.interpolation = None

    def matrix(self, params, shape):
        left, top, right, bottom = self._pad
        h, w = shape
        return warp.translation(left, top), (h + top + bottom, w + left + right)


@register
class PadIfNeeded(GeometricTransform):
    """Pad up to at least ``min_height x min_width``; ``position`` "center", "top_left" or "random"."""

    POSITIONS = ("center", "top_left", "random")

    def __init__(self, min_height: int, min_width: int, position: str = "center", border: str = "constant",
                 fill=0, fill_mask=0, p: float = 1.0):
        super().__init__(p)
        self.min_height = check_positive_int(min_height, "PadIfNeeded", "min_height")
        self.min_width = check_positive_int(min_width, "PadIfNeeded", "min_width")
        if position not in self.POSITIONS:
            raise ValueError(f"PadIfNeeded: position must be one of {', '.join(self.POSITIONS)}, got {position!r}")
        self.position = position
        _check_sampling(self, "bilinear", border, fill, fill_mask)
        self.interpolation = None

    def sample_params(self, rng, shape):
        if self.position == "random":
            return {"x": float(rng.random()), "y": float(rng.random())}
        return {"x": 0.5, "y": 0.5} if self.position == "center" else {"x": 0.0, "y": 0.0}

    def matrix(self, params, shape):
        h, w = shape
        extra_h, extra_w = max(0, self.min_height - h), max(0, self.min_width - w)
        if self.position == "center":  # the odd pixel goes to the bottom/right, like albumentations
            top, left = extra_h // 2, extra_w // 2
        else:
            top = min(int(math.floor(params["y"] * (extra_h + 1))), extra_h)
            left = min(int(math.floor(params["x"] * (extra_w + 1))), extra_w)
        return warp.translation(left, top), (h + extra_h, w + extra_w)
