"""Reading and writing images and label masks with Pillow, as (H, W[, C]) uint8 arrays.

Images are decoded fully on read (a truncated file fails here, not later),
turned upright by their EXIF orientation, and converted to L, RGB or RGBA.
Masks keep their integer label values (palette indices for "P" PNGs, whose
palette is returned so it can be written back).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".webp")


def find_images(root, extensions=IMAGE_EXTENSIONS) -> list[str]:
    """Relative POSIX paths of the image files under ``root`` (recursive, sorted, hidden skipped)."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in extensions:
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


def _open(path):
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im)


def read_image(path) -> np.ndarray:
    """Decode ``path`` to uint8 (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, upright per EXIF."""
    im = _open(path)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        return np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
    if im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    elif im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")
    return np.array(im)


def read_mask(path) -> tuple[np.ndarray, list | None]:
    """Decode a label mask; returns ``(labels, palette)`` (palette only for "P" images).

    Values are kept exactly: 8-bit and palette masks give uint8, 16-bit masks
    uint16, 32-bit masks int32; colour-coded RGB masks give (H, W, 3) uint8.
    """
    im = _open(path)
    palette = im.getpalette() if im.mode == "P" else None
    if im.mode == "1":
        return np.asarray(im).astype(np.uint8), None
    if im.mode in ("P", "L", "RGB", "RGBA"):
        return np.array(im), palette
    if im.mode.startswith("I;16"):
        return np.array(im).astype(np.uint16), None
    if im.mode == "I":
        return np.array(im).astype(np.int32), None
    return np.array(im.convert("RGB")), None


def _save(im, path: Path, **kwargs) -> None:
    """Write through a hidden temp file and rename: a crash never leaves a half-written output."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"write: unsupported image extension {path.suffix!r} for {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        im.save(tmp, format=fmt, **kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_image(path, image: np.ndarray, quality: int = 95, optimize: bool = False) -> None:
    """Save a uint8 (H, W[, C]) image; the format follows the suffix (JPEG/WebP at ``quality``).

    ``optimize`` spends more time for a smaller PNG/JPEG (previews, figures).
    """
    from PIL import Image

    path = Path(path)
    arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if arr.dtype != np.uint8:
        raise TypeError(f"write_image: expected uint8, got {arr.dtype} for {path}")
    im = Image.fromarray(arr)
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg") and im.mode == "RGBA":
        im = im.convert("RGB")
    kwargs = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
    if optimize and suffix in (".png", ".jpg", ".jpeg"):
        kwargs["optimize"] = True
    _save(im, path, **kwargs)


def write_mask(path, mask: np.ndarray, palette: list | None = None) -> None:
    """Save a label mask losslessly (PNG), restoring its palette when it had one.

    uint8 masks are 8-bit PNGs; wider integer labels (0..65535) 16-bit PNGs.
    """
    from PIL import Image

    path = Path(path)
    arr = mask[..., 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.ndim == 2 and arr.dtype.kind in "iu" and arr.dtype not in (np.uint8, np.uint16):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"write_mask: labels must lie in 0..65535 to be stored as PNG, got {lo}..{hi} for {path}")
        arr = arr.astype(np.uint16)  # 16-bit PNG: lossless for every label that fits
    im = Image.fromarray(arr)
    if palette is not None and im.mode == "L":
        im.putpalette(palette)  # L -> P keeping the indices
    _save(im, path)
