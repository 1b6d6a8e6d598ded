"""Training, evaluating and using image classifiers: the library behind ``zerodl classify`` and ``zerodl hpo``.

The data flow (DESIGN.md): dataset (uint8 ``(N, H, W, C)``) -> train/validation
split of the training set -> [augmentation per sample] -> scale (/255, the
book) or standardise with the fit split's channel statistics -> loader ->
model -> ``core.trainer.Trainer``. The test split is touched only by
:func:`evaluate` at the end.

A trained classifier is saved as one weights file whose metadata holds its
:class:`ClassifierSpec` (architecture, classes, preprocessing), so that
``load_classifier(path)`` rebuilds the right model and prepares new images
the way the training images were prepared.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from core.data import ArrayDataset, DataLoader, train_val_split
from core.losses import CrossEntropyLoss
from core.serialization import CheckpointError, load_arrays, save_weights

from .models import build_model

__all__ = ["JsonConfig", "TrainConfig", "ClassifierSpec", "TrainResult", "AUGMENT_PRESETS", "OPTIMIZERS", "SCHEDULES",
           "NORMALIZATIONS", "make_augmentation", "load_split", "load_data", "build_optimizer", "build_schedule",
           "train", "predict_proba", "evaluate", "save_classifier", "load_classifier", "preprocess"]

#: Augmentations sized for small images (28x28 / 32x32), as ``core.augment`` pipeline dicts.
#: ``crop-flip`` is the standard CIFAR/Fashion-MNIST recipe: pad 2 (zeros), random 28x28 crop, mirror.
AUGMENT_PRESETS = {
    "flip": {"name": "Compose", "transforms": [{"name": "HorizontalFlip", "p": 0.5}]},
    "crop-flip": {"name": "Compose", "transforms": [
        {"name": "Pad", "padding": 2},
        {"name": "RandomCrop", "height": -1, "width": -1},
        {"name": "HorizontalFlip", "p": 0.5},
    ]},
    "crop-flip-erase": {"name": "Compose", "transforms": [
        {"name": "Pad", "padding": 2},
        {"name": "RandomCrop", "height": -1, "width": -1},
        {"name": "HorizontalFlip", "p": 0.5},
        {"name": "RandomErasing", "p": 0.5},
    ]},
}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "cosine", "step", "exponential", "plateau")
NORMALIZATIONS = ("scale", "standardize")


class JsonConfig:
    """``to_dict`` / ``from_dict`` for a run-config dataclass (what ``config.json`` holds)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Build from a dict; unknown entries raise ValueError naming them and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown entries {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def _check_choice(self, name: str, options) -> None:
        value = getattr(self, name)
        if value not in options:
            raise ValueError(f"{type(self).__name__}: {name} must be one of {', '.join(options)}, got {value!r}")

    def _check_positive_ints(self, *names) -> None:
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")


@dataclass
class TrainConfig(JsonConfig):
    """Everything that defines a training run (written to ``config.json`` in the run folder).

    Defaults are the book's recipe (ch. 7/8): inputs /255, Adam lr 1e-3, batch 100.
    ``val_fraction=0`` trains on the whole training split (the book's way);
    ``train_limit`` keeps a seeded random subset of that many training images.
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    model: str = "deepconvnet"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augment: str | None = None
    normalize: str = "scale"
    image_mode: str = "RGB"
    image_size: list | None = None
    val_fraction: float = 0.1
    train_limit: int | None = None
    grad_clip: float | None = None
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        where = "TrainConfig"
        self._check_choice("optimizer", OPTIMIZERS)
        self._check_choice("schedule", SCHEDULES)
        self._check_choice("normalize", NORMALIZATIONS)
        self._check_positive_ints("epochs", "batch_size")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"{where}: lr must be a positive number, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"{where}: weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"{where}: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"{where}: label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.train_limit is not None and (not isinstance(self.train_limit, int) or self.train_limit < 2):
            raise ValueError(f"{where}: train_limit must be an int >= 2 or None, got {self.train_limit!r}")
        if not 0 <= self.warmup_epochs < self.epochs or not isinstance(self.warmup_epochs, int):
            raise ValueError(f"{where}: warmup_epochs must be an int in [0, epochs), got {self.warmup_epochs!r}")



@dataclass
class ClassifierSpec:
    """What is needed to rebuild a trained classifier and feed it images."""

    model: str
    num_classes: int
    in_channels: int
    input_size: tuple
    classes: list
    mean: list | None = None  # per-channel, on the [0, 1] scale; None: inputs are pixels / 255
    std: list | None = None
    model_kwargs: dict = field(default_factory=dict)
    dataset: str = ""

    def build(self, rng=None, dtype=np.float32):
        """A fresh (untrained) model of this architecture."""
        return build_model(self.model, num_classes=self.num_classes, in_channels=self.in_channels,
                           input_size=tuple(self.input_size), rng=rng, dtype=dtype, **self.model_kwargs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ClassifierSpec":
        known = {f.name for f in fields(cls)}
        missing = sorted(k for k in ("model", "num_classes", "in_channels", "input_size", "classes") if k not in data)
        if missing:
            raise ValueError(f"ClassifierSpec: entries {', '.join(missing)} are missing")
        spec = cls(**{k: v for k, v in data.items() if k in known})
        spec.input_size = tuple(spec.input_size)
        return spec


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: object
    spec: ClassifierSpec
    history: list
    trainer: object
    val_data: tuple | None  # (x, y) of the validation split, preprocessed


# ------------------------------------------------------------------------ data
def make_augmentation(augment, image_size=None, seed=None):
    """A ``core.augment`` pipeline from a name in ``AUGMENT_PRESETS``, a ``core.augment`` preset, or a file.

    ``image_size`` ``(H, W)`` fills the crop size of the small-image presets.
    Returns None for None / ``"none"``.
    """
    if augment is None or augment == "none":
        return None
    from core.augment import PRESETS, from_dict, get_preset, load_pipeline

    if augment in AUGMENT_PRESETS:
        spec = json.loads(json.dumps(AUGMENT_PRESETS[augment]))
        for t in spec["transforms"]:
            if t["name"] == "RandomCrop":
                if image_size is None:
                    raise ValueError(f"make_augmentation: preset {augment!r} needs image_size for its crop")
                t["height"], t["width"] = int(image_size[0]), int(image_size[1])
        if seed is not None:
            spec["seed"] = seed
        return from_dict(spec, f"augmentation preset {augment}")
    if augment in PRESETS:
        return get_preset(augment, seed=seed)
    path = Path(augment)
    if path.suffix.lower() in (".json", ".toml") or path.exists():
        if not path.is_file():
            raise ValueError(f"augment: pipeline file {augment} does not exist")
        return load_pipeline(path)
    raise ValueError(f"augment: {augment!r} is neither a preset ({', '.join(sorted(AUGMENT_PRESETS))}, "
                     f"{', '.join(sorted(PRESETS))}) nor a .json/.toml pipeline file")


def preprocess(images, mean=None, std=None) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` (or ``(H, W, C)`` / ``(N, H, W)``) -> float32 ``(N, C, H, W)`` as the model expects."""
    from .datasets import normalize_images

    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"preprocess: expected uint8 images, got dtype {images.dtype}")
    if images.ndim == 3 and images.shape[-1] in (1, 3):
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"preprocess: expected images (N, H, W, C), got shape {images.shape}")
    return normalize_images(images, mean, std, "NCHW", np.float32)


def load_split(dataset: str, split: str, data_dir=None, image_mode: str = "RGB", image_size=None):
    """One split of a registered dataset (``vision.datasets.DATASETS``) or of an image-folder dataset.

    An image-folder dataset is a path holding ``train/`` and ``test/``, each with one
    sub-folder per class; ``image_mode`` (``"L"`` or ``"RGB"``) and ``image_size``
    ``(H, W)`` (resize; required when the images differ in size) apply to it.
    """
    from .datasets import ImageFolder, get_dataset

    path = Path(dataset).expanduser()
    if path.is_dir():
        folder = path / split
        if not folder.is_dir():
            raise ValueError(f"image-folder dataset {path}: expected the sub-folders train/ and test/, each with "
                             f"one folder per class; {folder} is missing")
        return ImageFolder(folder, mode=image_mode, size=None if image_size is None else tuple(image_size),
                           name=str(path))
    return get_dataset(dataset, split, root=data_dir)


def load_data(config: TrainConfig):
    """``(train_dataset, test_dataset)`` ImageDatasets, the training one cut to ``train_limit`` when set."""
    args = (config.data_dir, config.image_mode, config.image_size)
    train_ds = load_split(config.dataset, "train", *args)
    test_ds = load_split(config.dataset, "test", *args)
    if list(test_ds.classes) != list(train_ds.classes):
        raise ValueError(f"dataset {config.dataset}: the test split's classes {test_ds.classes} differ from the "
                         f"training split's {train_ds.classes}")
    if config.train_limit is not None and config.train_limit < len(train_ds):
        keep = np.sort(np.random.default_rng([config.seed, 7]).permutation(len(train_ds))[:config.train_limit])
        train_ds = train_ds.subset(keep)
    return train_ds, test_ds


def _loaders(config: TrainConfig, train_ds):
    """``(train_loader, val_data, mean, std)``; ``val_data`` is ``(x, y)`` arrays or None."""
    from .datasets import ImageCollate

    if config.val_fraction > 0:
        fit, val = train_val_split(train_ds, config.val_fraction, stratify=True, seed=config.seed)
        fit_ds, val_ds = train_ds.subset(fit.indices), train_ds.subset(val.indices)
    else:
        fit_ds, val_ds = train_ds, None
    mean = std = None
    if config.normalize == "standardize":
        m, s = fit_ds.channel_stats()
        mean, std = [float(v) for v in m], [float(max(v, 1e-6)) for v in s]
    pipeline = make_augmentation(config.augment, fit_ds.image_shape[:2])
    if pipeline is None:
        x, y = fit_ds.as_arrays(mean=mean, std=std)
        loader = DataLoader(ArrayDataset(x, y), batch_size=config.batch_size, shuffle=True, seed=config.seed,
                            num_workers=config.num_workers)
    else:
        fit_ds = fit_ds.subset(np.arange(len(fit_ds)))  # own copy: the transform is set on it only
        fit_ds.transform = pipeline
        loader = DataLoader(fit_ds, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                            num_workers=config.num_workers, collate=ImageCollate(mean, std))
    val_data = None if val_ds is None else val_ds.as_arrays(mean=mean, std=std)
    return loader, val_data, mean, std


# ------------------------------------------------------------------ optimiser
def build_optimizer(config: TrainConfig, model):
    """The optimizer named by ``config.optimizer``; BatchNorm and bias parameters get no weight decay."""
    from core import optim

    decay, no_decay = [], []
    for name, p in model.named_parameters(trainable_only=True):
        (no_decay if p.data.ndim <= 1 else decay).append(p)
    wd = config.weight_decay
    groups = [{"params": decay, "weight_decay": wd}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    name, lr = config.optimizer, config.lr
    if name == "sgd":
        return optim.SGD(groups, lr=lr)
    if name in ("momentum", "nesterov"):
        return optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=name == "nesterov")
    if name == "adagrad":
        return optim.AdaGrad(groups, lr=lr)
    if name == "rmsprop":
        return optim.RMSprop(groups, lr=lr)
    if name == "adam":
        return optim.Adam(groups, lr=lr)
    return optim.AdamW(groups, lr=lr)


def build_schedule(config: TrainConfig, optimizer, steps_per_epoch: int):
    """``(schedule, interval)`` for the Trainer; cosine/warm-up are stepped per batch, the others per epoch."""
    from core import schedules as S

    total = config.epochs * steps_per_epoch
    warm = config.warmup_epochs * steps_per_epoch
    if config.schedule == "none":
        sched, interval = None, "epoch"
    elif config.schedule == "cosine":
        sched, interval = S.CosineAnnealingLR(optimizer, T_max=max(1, total - warm)), "step"
    elif config.schedule == "step":
        sched, interval = S.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1), "epoch"
    elif config.schedule == "exponential":
        sched, interval = S.ExponentialLR(optimizer, gamma=0.01 ** (1 / max(1, config.epochs))), "epoch"
    else:
        sched, interval = S.ReduceLROnPlateau(optimizer, factor=0.3, patience=2), "epoch"
    if warm:
        if interval == "epoch" and sched is not None:
            raise ValueError(f"warmup_epochs needs a per-step schedule ('cosine' or 'none'), got {config.schedule!r}")
        sched, interval = S.LinearWarmup(optimizer, warmup_steps=warm, after=sched), "step"
    return sched, interval


# ---------------------------------------------------------------- training
def train(config: TrainConfig, run_dir=None, callbacks=(), progress: bool = True, resume: bool = False,
          data=None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``; returns the model (last epoch), its spec and the history.

    Args:
        run_dir: when given, the Trainer writes ``metrics.csv``, ``learning_curves.png`` and
            ``checkpoints/{last,best}.npz`` there (best = lowest validation loss, or training
            loss without a validation split), and ``config.json`` is written first.
        callbacks: extra ``core.callbacks.Callback`` objects.
        resume: continue from ``run_dir/checkpoints/last.npz``.
        data: optional ``(train_dataset, test_dataset)`` already loaded (``load_data``).
    """
    from core.trainer import Trainer

    train_ds, _ = data if data is not None else load_data(config)
    loader, val_data, mean, std = _loaders(config, train_ds)
    h, w, c = train_ds.image_shape
    spec = ClassifierSpec(model=config.model, num_classes=train_ds.num_classes, in_channels=c, input_size=(h, w),
                          classes=list(train_ds.classes), mean=mean, std=std, model_kwargs=dict(config.model_kwargs),
                          dataset=config.dataset)
    model = spec.build(rng=config.seed)
    optimizer = build_optimizer(config, model)
    schedule, interval = build_schedule(config, optimizer, len(loader))
    if run_dir is not None:
        from core.serialization import atomic_write_bytes

        Path(run_dir).mkdir(parents=True, exist_ok=True)
        payload = {"config": config.to_dict(), "spec": spec.to_dict()}
        atomic_write_bytes(Path(run_dir) / "config.json", json.dumps(payload, indent=2).encode())
    val_loader = None
    if val_data is not None:
        val_loader = DataLoader(ArrayDataset(*val_data), batch_size=500, shuffle=False)
    trainer = Trainer(model, CrossEntropyLoss(label_smoothing=config.label_smoothing), optimizer,
                      schedule=schedule, schedule_interval=interval, callbacks=list(callbacks), run_dir=run_dir,
                      monitor="val_loss" if val_loader is not None else "loss", grad_clip=config.grad_clip,
                      progress=progress)
    history = trainer.fit(loader, val_loader, epochs=config.epochs, resume=resume)
    return TrainResult(model, spec, history, trainer, val_data)


# -------------------------------------------------------------- inference
def predict_proba(model, x, batch_size: int = 500) -> np.ndarray:
    """Softmax probabilities ``(N, K)`` of float inputs ``x`` ``(N, C, H, W)`` in eval mode, batch by batch."""
    from core.functional.activations import softmax

    was_training = model.training
    model.eval()
    try:
        out = [softmax(np.asarray(model(x[i:i + batch_size]), dtype=np.float32), axis=1)
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def evaluate(model, spec: ClassifierSpec, dataset, batch_size: int = 500, dtype=None):
    """``(probs (N, K), labels (N,))`` of ``dataset`` (an ImageDataset) under ``spec``'s preprocessing.

    ``dtype`` (e.g. ``np.float16``) casts the inputs to match a model cast with ``astype``.
    Raises ValueError when the dataset's images or classes do not fit the model.
    """
    h, w, c = dataset.image_shape
    if (h, w) != tuple(spec.input_size) or c != spec.in_channels:
        raise ValueError(f"evaluate: dataset {dataset.name!r} has images {h}x{w}x{c}, the model was trained on "
                         f"{spec.input_size[0]}x{spec.input_size[1]}x{spec.in_channels}")
    if dataset.num_classes != spec.num_classes:
        raise ValueError(f"evaluate: dataset {dataset.name!r} has {dataset.num_classes} classes, the model "
                         f"predicts {spec.num_classes}")
    probs = []
    for start in range(0, len(dataset), 5000):
        x = preprocess(dataset.images[start:start + 5000], spec.mean, spec.std)
        if dtype is not None:
            x = x.astype(dtype)
        probs.append(predict_proba(model, x, batch_size))
    return np.concatenate(probs), dataset.labels.copy()


# ---------------------------------------------------------------- files
_SPEC_KEY = "zerodl.classifier"


def save_classifier(path, model, spec: ClassifierSpec) -> Path:
    """Write ``model``'s weights and ``spec`` (as metadata) to ``.npz`` / ``.safetensors`` (atomically)."""
    path = Path(path)
    save_weights(model, path, metadata={_SPEC_KEY: json.dumps(spec.to_dict())})
    return path


def _spec_near(path: Path):
    """The spec in ``config.json`` of the run folder holding ``path`` (``run/checkpoints/x.npz`` or ``run/x``)."""
    for folder in (path.parent, path.parent.parent):
        cfg = folder / "config.json"
        if cfg.is_file():
            try:
                return ClassifierSpec.from_dict(json.loads(cfg.read_text())["spec"])
            except (KeyError, ValueError, json.JSONDecodeError) as e:
                raise CheckpointError(f"{cfg}: not a zerodl classify config ({e})") from None
    return None


def load_classifier(path, spec: ClassifierSpec | None = None, dtype=np.float32):
    """``(model, spec)`` from a file written by :func:`save_classifier`, a run folder, or a Trainer checkpoint.

    A Trainer checkpoint (``run/checkpoints/best.npz``) takes its spec from
    ``run/config.json``. Passing ``spec`` overrides the stored one (e.g. another
    architecture): a mismatch then raises ``CheckpointError`` naming the missing,
    unexpected and mis-shaped keys.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / "model.npz", path / "checkpoints" / "best.npz", path / "checkpoints" / "last.npz"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"load_classifier: {path} holds none of model.npz, checkpoints/best.npz, "
                                    "checkpoints/last.npz")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"load_classifier: no such checkpoint file: {path}")
    arrays, metadata = load_arrays(path)
    stored = None
    if isinstance(metadata, dict) and _SPEC_KEY in metadata:
        stored = ClassifierSpec.from_dict(json.loads(metadata[_SPEC_KEY]))
    elif isinstance(metadata, dict) and metadata.get("format") is not None:
        stored = _spec_near(path)
    spec = spec or stored
    if spec is None:
        raise CheckpointError(f"{path}: no classifier description (metadata {_SPEC_KEY!r} or a config.json in its "
                              "run folder); pass the architecture explicitly")
    if stored is not None and spec is not stored and stored.num_classes != spec.num_classes:
        raise CheckpointError(f"{path}: the checkpoint has {stored.num_classes} classes, the requested model "
                              f"{spec.num_classes}")
    from core.serialization import load_weights

    model = spec.build(dtype=dtype)
    try:
        load_weights(model, path)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (checkpoint architecture: {stored.model if stored else 'unknown'}, "
                              f"requested: {spec.model})") from None
    model.eval()
    return model, spec
