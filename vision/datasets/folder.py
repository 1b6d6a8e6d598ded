"""Image-folder dataset: ``root/<class name>/**/<image>``, any format Pillow reads.

Classes are the sorted sub-folder names of ``root`` (hidden ones skipped);
images are found recursively inside each class folder. Images are turned
upright by their EXIF orientation tag (phone photos are stored sideways with
a tag saying so), converted to ``"L"`` (1 channel) or ``"RGB"`` (3 channels)
and, with ``size=(h, w)``, resized. Without ``size`` every image must already
have the same size; the error names two files that differ.

Big folders stay on disk and are decoded per sample (``in_memory=False``);
small ones are decoded once into one uint8 array (``in_memory=True``; the
default ``None`` picks by the decoded size).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import ImageDataset

__all__ = ["ImageFolder", "read_image", "image_extensions"]

#: ``in_memory=None`` decodes folders up to this many bytes of uint8 pixels into memory.
AUTO_IN_MEMORY_BYTES = 1 << 30
_MODES = {"L": 1, "RGB": 3}
_RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
               "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "box": Image.Resampling.BOX}
# EXIF orientations 5-8 rotate by 90 or 270 degrees, so width and height swap.
_SWAPS_AXES = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


def image_extensions() -> frozenset:
    """Lower-case file extensions (with the dot) of every format this Pillow can open."""
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode == mode:
        return img
    if img.mode.startswith("I;16"):
        # Pillow's I;16 -> L conversion clips at 255; keep the top 8 bits instead.
        gray = Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8))
        return gray if mode == "L" else gray.convert(mode)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # Pillow wants palette transparency expanded before dropping it
    return img.convert(mode)


def read_image(path, mode: str = "RGB", size=None, resample: str = "bilinear") -> np.ndarray:
    """Decode one image file to uint8 ``(H, W, C)`` (C = 1 for ``"L"``, 3 for ``"RGB"``), EXIF-upright.

    ``size=(h, w)`` resizes (bilinear by default; Pillow filters over the
    whole footprint when shrinking, so there is no aliasing).
    """
    if mode not in _MODES:
        raise ValueError(f"read_image: mode must be 'L' or 'RGB', got {mode!r}")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img = _to_mode(img, mode)
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((size[1], size[0]), _RESAMPLING[resample])
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"read_image: cannot decode {path}: {exc}") from exc
    return array[..., None] if array.ndim == 2 else array


def _upright_size(path: Path) -> tuple:
    """``(h, w)`` after EXIF rotation, read from the header only (no pixel decoding)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"ImageFolder: cannot read {path} as an image: {exc}") from exc
    return (w, h) if orientation in _SWAPS_AXES else (h, w)


def _check_size(size):
    if size is None:
        return None
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"ImageFolder: size must be None or (height, width) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


class ImageFolder(ImageDataset):
    """Images in ``root/<class>/...`` as an :class:`ImageDataset` with label = sorted class index.

    Args:
        root: folder with one sub-folder per class.
        mode: ``"RGB"`` (C = 3) or ``"L"`` (grayscale, C = 1).
        size: ``(h, w)`` to resize every image to; None requires equal sizes.
        in_memory: True decodes every image now; False decodes per access;
            None decides by the decoded size (up to ``AUTO_IN_MEMORY_BYTES``).
        extensions: file extensions to include (default: all Pillow opens).
        resample: ``"bilinear"``, ``"bicubic"``, ``"lanczos"``, ``"box"`` or ``"nearest"``.
        transform: per-sample augmentation, as for :class:`ImageDataset`.
        num_threads: decoder threads when loading into memory (Pillow
            releases the GIL while decoding).

    Attributes: ``files`` (paths, sample order), ``class_to_idx``, ``in_memory``.
    """

    def __init__(self, root, mode: str = "RGB", size=None, in_memory: bool | None = None, extensions=None,
                 resample: str = "bilinear", transform=None, name: str | None = None, num_threads: int = 4):
        root = Path(root)
        if mode not in _MODES:
            raise ValueError(f"ImageFolder: mode must be 'L' (grayscale) or 'RGB', got {mode!r}")
        if resample not in _RESAMPLING:
            raise ValueError(f"ImageFolder: resample must be one of {sorted(_RESAMPLING)}, got {resample!r}")
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {root} is not a folder")
        self.root, self.mode, self.size, self.resample = root, mode, _check_size(size), resample
        self.name = name or root.name
        exts = image_extensions() if extensions is None else \
            frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        classes, files, labels = self._scan(root, exts)
        self.files = files
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        shape = self.size if self.size is not None else self._common_size(files)
        self.image_shape = (shape[0], shape[1], _MODES[mode])
        self.classes = classes
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self._images = None
        if in_memory is None:
            in_memory = len(files) * int(np.prod(self.image_shape)) <= AUTO_IN_MEMORY_BYTES
        self.in_memory = bool(in_memory)
        if self.in_memory:
            self._images = self._decode_all(max(1, int(num_threads)))

    @staticmethod
    def _scan(root: Path, exts: frozenset):
        class_dirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        if not class_dirs:
            raise ValueError(f"ImageFolder: {root} has no class sub-folders; expected root/<class name>/<images>")
        files, labels = [], []
        for label, cls in enumerate(class_dirs):
            found = []
            for dirpath, dirnames, filenames in os.walk(root / cls):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found.extend(Path(dirpath) / f for f in sorted(filenames)
                             if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts)
            if not found:
                raise ValueError(f"ImageFolder: class folder {root / cls} holds no images "
                                 f"(looked for {', '.join(sorted(exts)[:8])}{', ...' if len(exts) > 8 else ''}); "
                                 "add images or remove the folder")
            files.extend(found)
            labels.extend([label] * len(found))
        return class_dirs, files, labels

    def _common_size(self, files) -> tuple:
        sizes = [_upright_size(p) for p in files]
        first = sizes[0]
        differ = [i for i, s in enumerate(sizes) if s != first]
        if differ:
            other = sizes[differ[0]]
            raise ValueError(
                f"ImageFolder: images in {self.root} have different sizes and no size=(h, w) was given: "
                f"{files[0].relative_to(self.root)} is {first[0]}x{first[1]} (HxW) but "
                f"{files[differ[0]].relative_to(self.root)} is {other[0]}x{other[1]} "
                f"({len(differ)} of {len(files)} files differ from the first); pass size=(h, w) to resize")
        return first

    def _decode(self, index: int) -> np.ndarray:
        path = self.files[index]
        image = read_image(path, self.mode, self.size, self.resample)
        if image.shape != self.image_shape:  # the file changed after the folder was scanned
            raise ValueError(f"ImageFolder: {path} decodes to {image.shape[:2]} but the dataset's images "
                             f"are {self.image_shape[:2]}; pass size=(h, w) to resize")
        return image

    def _decode_all(self, num_threads: int) -> np.ndarray:
        images = np.empty((len(self.files),) + self.image_shape, dtype=np.uint8)

        def fill(i):
            images[i] = self._decode(i)
        if num_threads == 1 or len(self.files) < 64:
            for i in range(len(self.files)):
                fill(i)
        else:
            with ThreadPoolExecutor(num_threads) as pool:
                list(pool.map(fill, range(len(self.files))))
        return images

    @property
    def images(self) -> np.ndarray:
        """uint8 ``(N, H, W, C)``; a lazy folder decodes everything on first access and keeps it."""
        if self._images is None:
            self._images = self._decode_all(4)
            self.in_memory = True
        return self._images

    def load_image(self, index: int) -> np.ndarray:
        return self._images[index] if self._images is not None else self._decode(int(index))

    def _image_chunks(self, chunk: int = 256):
        if self._images is not None:
            yield from super()._image_chunks()
            return
        for start in range(0, len(self), chunk):
            yield np.stack([self._decode(i) for i in range(start, min(start + chunk, len(self)))])

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (f"ImageFolder(root={str(self.root)!r}, n={len(self)}, image_shape=({h}, {w}, {c}), "
                f"classes={self.num_classes}, mode={self.mode!r}, in_memory={self.in_memory})")
