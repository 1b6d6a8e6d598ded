"""Every registered transform once, with arguments that make it do something visible.

The invariant tests run each entry over several input kinds; ``test_registry_is_covered``
fails when a transform is registered without an entry here.
"""
from core.augment import (
    Affine, Brightness, BrightnessContrast, CenterCrop, ColorJitter, Compose, Contrast, CutMix, Gamma,
    GaussianBlur, GaussianNoise, Grayscale, HorizontalFlip, Hue, MixUp, Normalize, OneOf, Pad, PadIfNeeded,
    RandomApply, RandomCrop, RandomErasing, RandomResizedCrop, Resize, Rotate, Saturation, SomeOf, ToCHW,
    ToFloat, VerticalFlip,
)

#: (name, factory) for per-image transforms; inputs are at least 40x48.
AUG_DEFINITIONS = [
    ("HorizontalFlip", lambda: HorizontalFlip(p=1.0)),
    ("VerticalFlip", lambda: VerticalFlip(p=1.0)),
    ("Rotate", lambda: Rotate(limit=(10, 30), border="reflect")),
    ("Affine", lambda: Affine(scale=(0.8, 1.2), translate=0.1, rotate=20, shear=10, fill=(10, 20, 30))),
    ("RandomCrop", lambda: RandomCrop(30, 36)),
    ("CenterCrop", lambda: CenterCrop(31, 35)),
    ("RandomResizedCrop", lambda: RandomResizedCrop(24, 28, scale=(0.3, 1.0))),
    ("Resize", lambda: Resize(25, 70, keep_aspect=True)),
    ("Pad", lambda: Pad((3, 1, 2, 5), border="symmetric")),
    ("PadIfNeeded", lambda: PadIfNeeded(50, 61, position="random", border="edge")),
    ("Brightness", lambda: Brightness(0.3)),
    ("Contrast", lambda: Contrast(0.4)),
    ("BrightnessContrast", lambda: BrightnessContrast(0.2, 0.3)),
    ("Gamma", lambda: Gamma((0.5, 2.0))),
    ("GaussianNoise", lambda: GaussianNoise(std=(0.05, 0.1))),
    ("GaussianBlur", lambda: GaussianBlur(sigma=(0.8, 1.5))),
    ("RandomErasing", lambda: RandomErasing(value="random", count=2, p=1.0)),
    ("Normalize", lambda: Normalize(mean=0.5, std=0.25)),
    ("ToFloat", lambda: ToFloat()),
    ("ToCHW", lambda: ToCHW()),
    ("Saturation", lambda: Saturation(0.5)),
    ("Hue", lambda: Hue(0.2)),
    ("ColorJitter", lambda: ColorJitter(0.3, 0.3, 0.3, 0.1)),
    ("Grayscale", lambda: Grayscale()),
    ("Compose", lambda: Compose([HorizontalFlip(), Affine(rotate=10), Brightness(0.2)])),
    ("OneOf", lambda: OneOf([Rotate(20), GaussianBlur(1.0), VerticalFlip(p=1.0)], weights=[1, 2, 1])),
    ("SomeOf", lambda: SomeOf([HorizontalFlip(p=1.0), Gamma(), Contrast(0.3), Rotate(5)], n=(1, 3))),
    ("RandomApply", lambda: RandomApply([Resize(20, 22), Saturation(0.3)], p=0.7)),
]

#: batch-level transforms have their own call signature (images, labels, rng)
BATCH_DEFINITIONS = [
    ("MixUp", lambda: MixUp(alpha=0.4, num_classes=5)),
    ("CutMix", lambda: CutMix(alpha=1.0, num_classes=5, layout="NHWC")),
]

#: transforms whose output dtype/layout differs from the input by design
CONVERSIONS = {"Normalize", "ToFloat", "ToCHW"}
