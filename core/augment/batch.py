"""Batch-level mixing for classification training: MixUp and CutMix.

Both take a batch of images and labels and return mixed images with soft
labels ``lam * y + (1 - lam) * y[perm]``, where ``perm`` pairs every sample
with another one from the same batch.

- MixUp (Zhang et al., 2018): ``x = lam * x + (1 - lam) * x[perm]``, ``lam ~ Beta(alpha, alpha)``.
- CutMix (Yun et al., 2019): a box covering ``1 - lam`` of the image is pasted from
  ``x[perm]``; ``lam`` is then recomputed from the box actually pasted (after clipping).

Labels are integer class indices ``(N,)`` (then ``num_classes`` is required)
or one-hot / probability rows ``(N, K)``. Images are ``(N, C, H, W)``
(``layout="NCHW"``, what models take) or ``(N, H, W, C)``; uint8 results are rounded.
"""
from __future__ import annotations

import numpy as np

from core.augment.base import Transform, check_positive_int
from core.augment.registry import register
from core.backend import as_generator

LAYOUTS = ("NCHW", "NHWC")


def soft_labels(labels, num_classes, where: str) -> np.ndarray:
    """``(N,)`` integer labels -> ``(N, K)`` one-hot float32; ``(N, K)`` rows pass as float32."""
    y = np.asarray(labels)
    if y.ndim == 1:
        if y.dtype.kind not in "iu":
            raise TypeError(f"{where}: integer labels (N,) expected, got dtype {y.dtype}")
        if num_classes is None:
            raise ValueError(f"{where}: num_classes is required with integer labels")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{where}: labels must be in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
        out = np.zeros((len(y), num_classes), dtype=np.float32)
        out[np.arange(len(y)), y] = 1.0
        return out
    if y.ndim == 2:
        return y.astype(np.float32)
    raise ValueError(f"{where}: labels must be (N,) class indices or (N, K) rows, got shape {y.shape}")


class BatchTransform(Transform):
    """Base of batch-level transforms: ``t(images, labels, rng=None) -> (images, labels)``."""

    kind = "batch"

    def __init__(self, alpha: float, num_classes, layout: str, p: float):
        super().__init__(p)
        name = type(self).__name__
        if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha > 0):
            raise ValueError(f"{name}: alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, name, "num_classes", 2)
        if layout not in LAYOUTS:
            raise ValueError(f"{name}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self._rng = as_generator(None)

    def _check(self, images, labels):
        name = type(self).__name__
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise ValueError(f"{name}: images must be a 4-d array ({self.layout}), got "
                             f"{getattr(images, 'shape', type(images).__name__)}")
        y = soft_labels(labels, self.num_classes, name)
        if len(y) != len(images):
            raise ValueError(f"{name}: {len(images)} images but {len(y)} labels")
        return y

    def sample_params(self, rng, shape, n: int) -> dict:
        applied = self.p >= 1.0 or rng.random() < self.p
        if not applied or n < 2:
            return {"applied": False}
        return {"applied": True, "lam": float(rng.beta(self.alpha, self.alpha)),
                "perm": [int(i) for i in rng.permutation(n)]}

    def __call__(self, images, labels, rng=None, return_params: bool = False):
        """Mix a batch; returns ``(images, soft_labels)`` (and the params when asked)."""
        y = self._check(images, labels)
        h, w = images.shape[2:] if self.layout == "NCHW" else images.shape[1:3]
        params = self.sample_params(self._rng if rng is None else as_generator(rng), (h, w), len(images))
        out = self.mix(images, y, params)
        return (*out, params) if return_params else out

    def replay(self, params: dict, images, labels):
        """Mix with recorded ``params`` (from ``return_params=True``)."""
        return self.mix(images, self._check(images, labels), params)

    def mix(self, images, y, params):
        raise NotImplementedError(f"{type(self).__name__} must implement mix()")


def _blend(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    mixed = lam * a.astype(np.float32) + (1.0 - lam) * b.astype(np.float32)
    if a.dtype == np.uint8:
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return mixed.astype(a.dtype, copy=False)


@register
class MixUp(BatchTransform):
    """MixUp: blend every image with a partner; ``lam ~ Beta(alpha, alpha)``."""

    def __init__(self, alpha: float = 0.4, num_classes=None, layout: str = "NCHW", p: float = 1.0):
        super().__init__(alpha, num_classes, layout, p)

    def mix(self, images, y, params):
        if not params.get("applied"):
            return images.copy(), y
        lam, perm = params["lam"], np.asarray(params["perm"])
        return _blend(images, images[perm], lam), lam * y + (1 - lam) * y[perm]


@register
class CutMix(BatchTransform):
    """CutMix: paste a box from a partner; labels weighted by the pasted area."""

    def __init__(self, alpha: float = 1.0, num_classes=None, layout: str = "NCHW", p: float = 1.0):
        super().__init__(alpha, num_classes, layout, p)

    def sample_params(self, rng, shape, n):
        params = super().sample_params(rng, shape, n)
        if params["applied"]:
            h, w = shape
            cut = np.sqrt(1.0 - params["lam"])
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            y0, y1 = int(np.clip(cy - ch // 2, 0, h)), int(np.clip(cy + ch // 2, 0, h))
            x0, x1 = int(np.clip(cx - cw // 2, 0, w)), int(np.clip(cx + cw // 2, 0, w))
            params["box"] = [x0, y0, x1, y1]
            params["lam"] = 1.0 - (x1 - x0) * (y1 - y0) / (h * w)  # the area actually pasted
        return params

    def mix(self, images, y, params):
        if not params.get("applied"):
            return images.copy(), y
        lam, perm = params["lam"], np.asarray(params["perm"])
        x0, y0, x1, y1 = params["box"]
        out = images.copy()
        if self.layout == "NCHW":
            out[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
        else:
            out[:, y0:y1, x0:x1] = images[perm][:, y0:y1, x0:x1]
        return out, lam * y + (1 - lam) * y[perm]
