"""Data augmentation for images, masks, boxes and keypoints (NumPy + Pillow).

Quick start::

    from core.augment import Compose, HorizontalFlip, Affine, BrightnessContrast

    pipe = Compose([HorizontalFlip(p=0.5), Affine(rotate=15, translate=0.1),
                    BrightnessContrast(0.2, 0.2)], seed=0)
    out = pipe(image)                                   # image -> image
    res = pipe(image=image, mask=mask, boxes=boxes, labels=labels, rng=rng)
    res["image"], res["mask"], res["boxes"], res["labels"], res["params"]
    again = pipe.replay(res["params"], image=other_image)  # same random choices

Images are (H, W) or (H, W, C) with C in 1, 3, 4, uint8 or float32 in [0, 1].
"""
from core.augment.base import Transform, derive_rng
from core.augment.batch import CutMix, MixUp
from core.augment.color import ColorJitter, Grayscale, Hue, Saturation
from core.augment.compose import Compose, OneOf, RandomApply, SomeOf
from core.augment.geometric import (
    Affine, CenterCrop, GeometricTransform, HorizontalFlip, Pad, PadIfNeeded, RandomCrop,
    RandomResizedCrop, Resize, Rotate, VerticalFlip,
)
from core.augment.pixel import (
    Brightness, BrightnessContrast, Contrast, Gamma, GaussianBlur, GaussianNoise, Normalize,
    RandomErasing, ToCHW, ToFloat,
)
from core.augment.presets import PRESETS, get_preset
from core.augment.registry import available, get_class, register
from core.augment.serialize import from_dict, load_pipeline, save_pipeline, to_dict

__all__ = [
    "Transform", "GeometricTransform", "derive_rng",
    "Compose", "OneOf", "RandomApply", "SomeOf",
    "HorizontalFlip", "VerticalFlip", "Rotate", "Affine", "RandomCrop", "CenterCrop",
    "RandomResizedCrop", "Resize", "Pad", "PadIfNeeded",
    "Brightness", "Contrast", "BrightnessContrast", "Gamma", "GaussianNoise", "GaussianBlur",
    "RandomErasing", "Normalize", "ToFloat", "ToCHW",
    "Saturation", "Hue", "ColorJitter", "Grayscale",
    "MixUp", "CutMix",
    "PRESETS", "get_preset", "available", "get_class", "register",
    "to_dict", "from_dict", "save_pipeline", "load_pipeline",
]
