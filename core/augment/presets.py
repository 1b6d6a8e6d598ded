"""Ready-made pipelines for common jobs, kept as data (the same dicts a pipeline file holds).

- ``classification-light``: flips, a gentle affine and tone jitter; keeps the image size.
- ``classification-strong``: flips, affine with shear, Inception-style random-resized
  crop to 224x224 (one resampling pass for the three), colour jitter, occasional
  blur/noise, random erasing.
- ``segmentation``: flips and an affine with reflected borders (masks follow with
  nearest-neighbour sampling), tone and gamma jitter; keeps the image size.
- ``benchmark``: the pipeline ``bench/augment.py`` times (flip, affine, random-resized
  crop to 224x224, brightness/contrast).
"""
from __future__ import annotations

import copy

from core.augment.serialize import from_dict

PRESETS: dict[str, dict] = {
    "classification-light": {
        "name": "Compose", "transforms": [
            {"name": "HorizontalFlip", "p": 0.5},
            {"name": "Affine", "scale": [0.95, 1.05], "translate": 0.05, "rotate": 10.0, "border": "reflect"},
            {"name": "BrightnessContrast", "brightness": 0.1, "contrast": 0.1},
        ],
    },
    "classification-strong": {
        "name": "Compose", "transforms": [
            {"name": "HorizontalFlip", "p": 0.5},
            {"name": "Affine", "rotate": 20.0, "shear": 8.0, "border": "reflect", "p": 0.7},
            {"name": "RandomResizedCrop", "height": 224, "width": 224, "scale": [0.35, 1.0]},
            {"name": "ColorJitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05},
            {"name": "OneOf", "p": 0.3, "transforms": [
                {"name": "GaussianBlur", "sigma": [0.3, 1.5]},
                {"name": "GaussianNoise", "std": [0.01, 0.04]},
            ]},
            {"name": "RandomErasing", "p": 0.25},
        ],
    },
    "segmentation": {
        "name": "Compose", "transforms": [
            {"name": "HorizontalFlip", "p": 0.5},
            {"name": "Affine", "scale": [0.8, 1.2], "translate": 0.1, "rotate": 15.0, "shear": 5.0,
             "border": "reflect"},
            {"name": "BrightnessContrast", "brightness": 0.15, "contrast": 0.15},
            {"name": "Gamma", "gamma": [0.85, 1.2], "p": 0.5},
        ],
    },
    "benchmark": {
        "name": "Compose", "transforms": [
            {"name": "HorizontalFlip", "p": 0.5},
            {"name": "Affine", "rotate": 15.0, "translate": 0.1, "scale": [0.9, 1.1]},
            {"name": "RandomResizedCrop", "height": 224, "width": 224},
            {"name": "BrightnessContrast", "brightness": 0.2, "contrast": 0.2},
        ],
    },
}


def get_preset(name: str, seed=None):
    """Build the preset pipeline ``name`` (a ``Compose``), optionally seeded."""
    if name not in PRESETS:
        raise ValueError(f"get_preset: unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    spec = copy.deepcopy(PRESETS[name])
    if seed is not None:
        spec["seed"] = seed
    return from_dict(spec, f"preset {name}")
