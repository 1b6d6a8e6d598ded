"""Pixel-level transforms (the image only; masks, boxes and keypoints are untouched).

Tone curves (brightness, contrast, gamma) are functions of the value alone,
so on uint8 images they are a 256-entry lookup table; ``Compose`` multiplies
consecutive tables into one (``lut2[lut1]``) and indexes the image once.
All values are in [0, 1] units whatever the dtype (``Brightness(0.1)`` adds
up to 10% of white). The alpha channel of RGBA images is never changed.
"""
from __future__ import annotations

import numpy as np

from core.augment.base import (
    Transform, check_positive_int, check_range, max_value, uniform, uniforms,
)
from core.augment.lut import apply_lut
from core.augment.registry import register


def color_channels(image: np.ndarray) -> int:
    """Channels a colour operation touches: all but the alpha of RGBA."""
    return 3 if image.ndim == 3 and image.shape[2] == 4 else (image.shape[2] if image.ndim == 3 else 1)


def _from_float(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Clip [0, 1]-unit float values back into ``like``'s dtype."""
    if like.dtype == np.uint8:
        return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    return np.clip(values, 0.0, 1.0).astype(like.dtype, copy=False)


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) * np.float32(1 / 255) if image.dtype == np.uint8 else image.astype(np.float32)


_LEVELS = np.arange(256, dtype=np.float64) / 255.0  # the uint8 levels in [0, 1] units
_LEVELS.flags.writeable = False


class ToneCurve(Transform):
    """A per-value function ``curve(x, **params)`` on [0, 1] units; uint8 images use a table."""

    def curve(self, x: np.ndarray, **params) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement curve()")

    def lut(self, **params) -> np.ndarray:
        table = np.multiply(self.curve(_LEVELS, **params), 255.0)
        np.rint(table, out=table)
        np.maximum(table, 0.0, out=table)  # two ufuncs: np.clip's Python wrapper costs more
        np.minimum(table, 255.0, out=table)
        return table.astype(np.uint8)

    def apply(self, image, **params):
        if image.dtype == np.uint8:
            return apply_lut(image, self.lut(**params))
        out = np.clip(self.curve(image, **params), 0.0, 1.0).astype(image.dtype, copy=False)
        if image.ndim == 3 and image.shape[2] == 4:
            out[..., 3] = image[..., 3]
        return out


@register
class Brightness(ToneCurve):
    """Add ``b`` drawn from ``limit`` (a fraction of white): ``x + b``."""

    def __init__(self, limit=0.2, p: float = 1.0):
        super().__init__(p)
        self.limit = limit
        self._limit = check_range(limit, "Brightness", "limit", low=-1.0, high=1.0)

    def sample_params(self, rng, shape):
        return {"beta": uniform(rng, self._limit)}

    def curve(self, x, beta):
        return x + beta


@register
class Contrast(ToneCurve):
    """Stretch about mid-grey by ``1 + c``, ``c`` drawn from ``limit``: ``(x - 0.5)(1 + c) + 0.5``."""

    def __init__(self, limit=0.2, p: float = 1.0):
        super().__init__(p)
        self.limit = limit
        self._limit = check_range(limit, "Contrast", "limit", low=-1.0)

    def sample_params(self, rng, shape):
        return {"alpha": 1.0 + uniform(rng, self._limit)}

    def curve(self, x, alpha):
        return (x - 0.5) * alpha + 0.5


@register
class BrightnessContrast(ToneCurve):
    """Brightness and contrast in one table: ``(x - 0.5)(1 + c) + 0.5 + b``.

    Args:
        brightness: limit of ``b`` (fraction of white), ``v`` for ``(-v, v)`` or a range.
        contrast: limit of ``c``, ``v`` for ``(-v, v)`` or a range.
    """

    def __init__(self, brightness=0.2, contrast=0.2, p: float = 1.0):
        super().__init__(p)
        self.brightness, self.contrast = brightness, contrast
        self._b = check_range(brightness, "BrightnessContrast", "brightness", low=-1.0, high=1.0)
        self._c = check_range(contrast, "BrightnessContrast", "contrast", low=-1.0)

    def sample_params(self, rng, shape):
        beta, contrast = uniforms(rng, self._b, self._c)
        return {"beta": beta, "alpha": 1.0 + contrast}

    def curve(self, x, beta, alpha):
        return (x - 0.5) * alpha + 0.5 + beta


@register
class Gamma(ToneCurve):
    """Power curve ``x ** g`` with ``g`` drawn from ``gamma`` (a number or a ``(low, high)`` range)."""

    def __init__(self, gamma=(0.8, 1.25), p: float = 1.0):
        super().__init__(p)
        self.gamma = gamma
        self._gamma = check_range(gamma, "Gamma", "gamma", symmetric_about=None, low=1e-3)

    def sample_params(self, rng, shape):
        return {"gamma": uniform(rng, self._gamma)}

    def curve(self, x, gamma):
        return np.power(np.clip(x, 0.0, None), gamma)


@register
class GaussianNoise(Transform):
    """Add zero-mean Gaussian noise with standard deviation drawn from ``std`` ([0, 1] units).

    ``per_channel=False`` adds the same noise to every colour channel
    (luminance noise). The noise comes from a recorded seed, so replays match.
    """

    def __init__(self, std=(0.01, 0.05), per_channel: bool = True, p: float = 1.0):
        super().__init__(p)
        self.std, self.per_channel = std, per_channel
        self._std = check_range(std, "GaussianNoise", "std", symmetric_about=None, low=0.0, high=1.0)

    def sample_params(self, rng, shape):
        return {"std": uniform(rng, self._std), "seed": int(rng.integers(0, 2**31))}

    def apply(self, image, std, seed):
        c = color_channels(image)
        h, w = image.shape[:2]
        noise_shape = (h, w, c if self.per_channel else 1) if image.ndim == 3 else (h, w)
        noise = np.random.default_rng(seed).standard_normal(noise_shape, dtype=np.float32)
        noise *= np.float32(std * max_value(image.dtype))
        out = image.copy()
        region = out[..., :c] if image.ndim == 3 else out
        if image.dtype == np.uint8:
            region[...] = np.clip(region + noise + np.float32(0.5), 0, 255).astype(np.uint8)
        else:
            region[...] = np.clip(region + noise, 0.0, 1.0)
        return out


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur_float(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with symmetric borders; (H, W[, C]) float in, float32 out."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    x = image.astype(np.float32)
    for axis in (0, 1):
        widths = [(0, 0)] * x.ndim
        widths[axis] = (r, r)
        padded = np.pad(x, widths, mode="symmetric")
        n = x.shape[axis]
        acc = np.zeros_like(x)
        for t, weight in enumerate(k):  # one pass per tap (2r+1 of them), vectorised over pixels
            acc += weight * np.take(padded, np.arange(t, t + n), axis=axis)
        x = acc
    return x


@register
class GaussianBlur(Transform):
    """Gaussian blur with standard deviation (pixels) drawn from ``sigma``.

    uint8 images with 1, 3 or 4 channels use Pillow's C implementation
    (three extended box blurs, within a grey level of the exact kernel);
    float images use a separable exact kernel of radius ``ceil(3 sigma)``.
    """

    def __init__(self, sigma=(0.1, 2.0), p: float = 1.0):
        super().__init__(p)
        self.sigma = sigma
        self._sigma = check_range(sigma, "GaussianBlur", "sigma", symmetric_about=None, low=0.0, high=100.0)

    def sample_params(self, rng, shape):
        return {"sigma": uniform(rng, self._sigma)}

    def apply(self, image, sigma):
        if sigma <= 0:
            return image.copy()
        if image.dtype == np.uint8:
            from PIL import Image, ImageFilter

            squeeze = image.ndim == 3 and image.shape[2] == 1
            pil = Image.fromarray(image[..., 0] if squeeze else image)
            out = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius=sigma)))
            return out[..., None].copy() if squeeze else out.copy()
        out = blur_float(image, sigma)
        if image.ndim == 3 and image.shape[2] == 4:
            out[..., 3] = image[..., 3]
        return out.astype(image.dtype, copy=False)


@register
class RandomErasing(Transform):
    """Erase ``count`` random rectangles (Random Erasing, Zhong et al. 2017; Cutout when ``count > 1``).

    Args:
        scale: erased area as a fraction of the image, a ``(low, high)`` range.
        ratio: aspect ratio (w/h) range, drawn log-uniformly.
        value: fill in [0, 1] units (0 = black), or "random" for uniform noise.
        count: rectangles per image.
    """

    def __init__(self, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, count: int = 1, p: float = 0.5):
        super().__init__(p)
        self.scale, self.ratio, self.value = scale, ratio, value
        self._scale = check_range(scale, "RandomErasing", "scale", symmetric_about=None, low=0.0, high=1.0)
        self._ratio = check_range(ratio, "RandomErasing", "ratio", symmetric_about=None, low=1e-3)
        if not (value == "random" or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and 0.0 <= value <= 1.0)):
            raise ValueError(f"RandomErasing: value must be a number in [0, 1] or 'random', got {value!r}")
        self.count = check_positive_int(count, "RandomErasing", "count")

    def sample_params(self, rng, shape):
        h, w = shape
        rects = []
        log_r = np.log(self._ratio)
        for _ in range(self.count):
            for _attempt in range(10):  # torchvision's rejection loop
                area = h * w * rng.uniform(*self._scale)
                ratio = np.exp(rng.uniform(*log_r))
                eh, ew = int(round(np.sqrt(area / ratio))), int(round(np.sqrt(area * ratio)))
                if 0 < eh < h and 0 < ew < w:
                    top, left = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
                    rects.append([left / w, top / h, ew / w, eh / h])
                    break
        return {"rects": rects, "seed": int(rng.integers(0, 2**31))}

    def apply(self, image, rects, seed):
        out = image.copy()
        h, w = image.shape[:2]
        rng = np.random.default_rng(seed)
        c = color_channels(image)
        for x, y, rw, rh in rects:
            x0, y0 = int(round(x * w)), int(round(y * h))
            x1, y1 = min(w, x0 + max(1, int(round(rw * w)))), min(h, y0 + max(1, int(round(rh * h))))
            region = out[y0:y1, x0:x1, :c] if image.ndim == 3 else out[y0:y1, x0:x1]
            if self.value == "random":
                noise = rng.random(region.shape, dtype=np.float32)
                region[...] = _from_float(noise, image)
            else:
                region[...] = _from_float(np.float32(self.value), image)
        return out


@register
class Normalize(Transform):
    """``(x / max_value - mean) / std`` per channel -> float32 (ImageNet statistics by default).

    ``max_value`` defaults to 255 for uint8 and 1 for float input.
    """

    keeps_dtype = False

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), max_value=None, p: float = 1.0):
        super().__init__(p)
        self.mean, self.std, self.max_value = mean, std, max_value
        self._mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self._std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self._mean.size != self._std.size or np.any(self._std <= 0):
            raise ValueError(f"Normalize: mean and std need the same length and std > 0, got mean={mean!r}, std={std!r}")
        if max_value is not None and not (isinstance(max_value, (int, float)) and max_value > 0):
            raise ValueError(f"Normalize: max_value must be None or > 0, got {max_value!r}")

    def apply(self, image):
        c = image.shape[2] if image.ndim == 3 else 1
        if self._mean.size not in (1, c):
            raise ValueError(f"Normalize: mean/std have {self._mean.size} values but the image has {c} channels")
        scale = np.float32(1.0 / (self.max_value or max_value(image.dtype)))
        mean = self._mean if image.ndim == 3 else self._mean[0]
        inv_std = (1.0 / self._std) if image.ndim == 3 else 1.0 / self._std[0]
        return ((image.astype(np.float32) * scale - mean) * inv_std).astype(np.float32)


@register
class ToFloat(Transform):
    """uint8 -> float32 in [0, 1] (divide by ``max_value``, default 255); float input is copied."""

    keeps_dtype = False

    def __init__(self, max_value=None, p: float = 1.0):
        super().__init__(p)
        if max_value is not None and not (isinstance(max_value, (int, float)) and max_value > 0):
            raise ValueError(f"ToFloat: max_value must be None or > 0, got {max_value!r}")
        self.max_value = max_value

    def apply(self, image):
        if image.dtype == np.uint8:
            return image.astype(np.float32) * np.float32(1.0 / (self.max_value or 255.0))
        return image.astype(np.float32, copy=True)


@register
class ToCHW(Transform):
    """(H, W, C) -> (C, H, W) and (H, W) -> (1, H, W) for models; must be the last transform."""

    keeps_dtype = False
    final = True

    def __init__(self, p: float = 1.0):
        super().__init__(p)

    def apply(self, image):
        if image.ndim == 2:
            return image[None].copy()
        return image.transpose(2, 0, 1).copy()  # copy() is C-ordered: never a view of the input
