"""The transform contract: sample parameters once, apply them to every target.

A transform ``t`` is used in two steps (albumentations' ``get_params`` +
``apply``; torchvision v2's ``make_params`` + ``transform``):

1. ``params = t.sample_params(rng, (H, W))`` draws every random choice into a
   small JSON-able dict (floats, ints, lists). Geometric parameters are
   stored relative to the image size where that makes sense, so a record can
   be replayed on an image of another size.
2. ``t.apply(image, **params)`` / ``t.apply_to_mask(mask, **params)`` are
   deterministic given ``params``; geometric transforms describe themselves
   as a 3x3 matrix (``geometric.py``) so that boxes and keypoints follow and
   consecutive warps can be fused by ``Compose``.

Calling a transform directly (``t(image, rng=0)``) runs it as a one-element
``Compose`` — see ``compose.py`` for the dict API with masks, boxes and keypoints.
"""
from __future__ import annotations

import inspect
import math
import zlib

import numpy as np

IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


def derive_rng(seed: int, *keys) -> np.random.Generator:
    """A Generator for one (seed, key...) cell, independent of process and order.

    String keys (file names) are hashed with CRC-32, so sample ``i`` of file
    ``f`` gets the same randomness whether 1 or 16 workers process it.
    """
    words = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


def check_probability(p, where: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise TypeError(f"{where}: p must be a number in [0, 1], got {type(p).__name__} {p!r}")
    if not 0.0 <= float(p) <= 1.0 or math.isnan(p):
        raise ValueError(f"{where}: p must be in [0, 1], got {p}")
    return float(p)


def check_range(value, where: str, name: str, symmetric_about: float | None = 0.0,
                low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    """Normalise a scalar or ``(lo, hi)`` argument to a float pair and validate it.

    A scalar ``v`` means ``(center - v, center + v)`` when ``symmetric_about``
    is given (``limit=0.2`` -> ``(-0.2, 0.2)``), else the constant ``(v, v)``.
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        v = float(value)
        pair = (symmetric_about - v, symmetric_about + v) if symmetric_about is not None else (v, v)
        if symmetric_about is not None and v < 0:
            raise ValueError(f"{where}: {name} must be >= 0 when given as one number, got {value}")
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
        pair = (float(value[0]), float(value[1]))
    else:
        raise TypeError(f"{where}: {name} must be a number or a (low, high) pair, got {value!r}")
    if pair[0] > pair[1]:
        raise ValueError(f"{where}: {name} must have low <= high, got {value!r}")
    if pair[0] < low or pair[1] > high:
        raise ValueError(f"{where}: {name} must lie in [{low}, {high}], got {value!r}")
    return pair


def check_positive_int(value, where: str, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_image(image, where: str) -> np.ndarray:
    """Validate an augmentation input: uint8 or float32, (H, W) or (H, W, C) with C in 1, 3, 4."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: image must be a numpy array (H, W[, C]), got {type(image).__name__}")
    if image.dtype not in IMAGE_DTYPES:
        raise TypeError(f"{where}: image dtype must be uint8 or float32 (values in [0, 1]), got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{where}: image must be (H, W) or (H, W, C) with C in 1, 3, 4; got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: image must be at least 1x1, got shape {image.shape}")
    return image


def uniform(rng: np.random.Generator, pair) -> float:
    lo, hi = pair
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def uniforms(rng: np.random.Generator, *pairs) -> list[float]:
    """``[uniform(rng, p) for p in pairs]`` with one generator call: the same numbers
    (``rng.uniform(lo, hi)`` is ``lo + (hi - lo) * rng.random()``), a few microseconds
    less per image."""
    drawn = [p for p in pairs if p[0] != p[1]]
    u = iter(rng.random(len(drawn)).tolist() if drawn else ())
    return [float(lo) if lo == hi else lo + (hi - lo) * next(u) for lo, hi in pairs]


def max_value(dtype) -> float:
    """The value of white: 255 for uint8, 1.0 for float images."""
    return 255.0 if np.dtype(dtype) == np.uint8 else 1.0


class Transform:
    """Base class of every augmentation.

    Subclasses set ``kind`` ("geometric", "pixel", "container", "batch") and
    override ``sample_params``/``apply`` (and ``apply_to_mask`` where the
    transform touches masks). Constructor arguments must be stored under
    attributes of the same name: ``get_args`` reads them back for
    serialization.

    Args:
        p: probability that the transform is applied, in [0, 1].
    """

    kind = "pixel"
    #: False for the conversions (Normalize, ToFloat, ToCHW) that change dtype or layout.
    keeps_dtype = True

    def __init__(self, p: float = 1.0):
        self.p = check_probability(p, type(self).__name__)

    # -- the contract ----------------------------------------------------------
    def sample_params(self, rng: np.random.Generator, shape) -> dict:
        """Draw this transform's random choices for an image of ``shape`` ``(H, W)``."""
        return {}

    def apply(self, image: np.ndarray, **params) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        """Masks are untouched by pixel-level transforms."""
        return mask

    def output_shape(self, shape, params: dict):
        """``(H, W)`` after the transform; pixel transforms keep it."""
        return tuple(shape)

    # -- conveniences ------------------------------------------------------------
    def get_args(self) -> dict:
        """Constructor arguments (read back from attributes), for serialization and repr."""
        sig = inspect.signature(type(self).__init__)
        args = {}
        for name, prm in sig.parameters.items():
            if name == "self" or prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
                continue
            args[name] = getattr(self, name)
        return args

    def __call__(self, *args, rng=None, **targets):
        """Apply alone: ``t(image, rng=...) -> image`` or ``t(image=..., mask=..., rng=...) -> dict``."""
        from core.augment.compose import Compose

        return Compose([self])(*args, rng=rng, **targets)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and _plain(self.get_args()) == _plain(other.get_args())

    __hash__ = object.__hash__


def _plain(value):
    """Tuples -> lists, numpy scalars -> Python: the JSON view of an argument."""
    if isinstance(value, Transform):
        return {"name": type(value).__name__, **_plain(value.get_args())}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value

