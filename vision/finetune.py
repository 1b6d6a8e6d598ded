"""Fine-tuning a pretrained CNN on a new dataset: the library behind ``zerodl finetune``.

The data flow: dataset (uint8 ``(N, H, W, C)``, any size, grey or colour) ->
[few-shot / limit subset] -> fit / validation split -> [augmentation per
sample] -> :class:`FitCollate` (resize to ``img_size``, grey to RGB, the
checkpoint's normalisation) -> model -> ``core.trainer.Trainer``.

Two ways to train:

* **uncached**: the whole model runs forward every step; frozen stages are
  not updated (and their BatchNorm stays in eval mode), backward stops below
  the lowest trainable stage.
* **cached features** (``cache_features=True``, needs ``freeze="backbone"``):
  the frozen backbone embeds each training image once per augmented copy
  (``cache_copies``), the features are stored in ``run_dir/features.npz``,
  and only the classifier head trains on them, which takes seconds.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.data import ArrayDataset, DataLoader, train_val_split
from core.losses import CrossEntropyLoss

from .classification import JsonConfig
from .transfer import (apply_freeze, classifier_head, extract_features, param_groups, parse_freeze,
                       pretrained_backbone)

__all__ = ["FinetuneConfig", "FinetuneResult", "FitCollate", "few_shot_indices", "load_finetune_data",
           "finetune", "predict_dataset", "build_finetune_optimizer"]

OPTIMIZERS = ("adam", "adamw", "momentum")
SCHEDULES = ("none", "cosine")
BN_STATS = ("auto", "frozen", "update")


@dataclass
class FinetuneConfig(JsonConfig):
    """Everything that defines a fine-tuning run (written to ``config.json`` in the run folder).

    ``bn_stats``: ``"frozen"`` keeps every BatchNorm on its pretrained running
    statistics while fine-tuning (see ``transfer.apply_freeze``), ``"update"``
    lets the trainable stages' BatchNorm follow the new data, ``"auto"`` is
    ``"frozen"`` for pretrained weights and ``"update"`` from scratch.
    ``head_epochs`` first trains the new classifier alone on cached features (see
    :func:`finetune`). ``per_class`` keeps that many training images of each class (few-shot),
    ``train_limit`` / ``test_limit`` seeded random subsets; ``pretrained=False``
    trains the same architecture from random weights (the baseline).
    """

    model: str = "efficientnet_lite0"
    weights: str | None = None
    pretrained: bool = True
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    img_size: int = 224
    freeze: str = "backbone"
    bn_stats: str = "auto"
    cache_features: bool = False
    cache_copies: int = 1
    epochs: int = 10
    head_epochs: int = 0
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 0.0
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    augment: str | None = None
    val_fraction: float = 0.1
    per_class: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0

    def __post_init__(self):
        where = "FinetuneConfig"
        mode, _ = parse_freeze(self.freeze)
        self._check_choice("bn_stats", BN_STATS)
        self._check_choice("optimizer", OPTIMIZERS)
        self._check_choice("schedule", SCHEDULES)
        self._check_positive_ints("epochs", "batch_size", "img_size", "cache_copies")
        if self.img_size < 32:
            raise ValueError(f"{where}: img_size must be >= 32 (the network downsamples 32x), got {self.img_size}")
        for name in ("lr", "backbone_lr_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{where}: {name} must be a positive number, got {value!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"{where}: weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"{where}: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"{where}: label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        for name in ("per_class", "train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{where}: {name} must be a positive int or None, got {value!r}")
        if self.cache_features and mode != "backbone":
            raise ValueError(f"{where}: cache_features trains only the classifier on stored backbone features, so "
                             f"it needs freeze='backbone', got freeze={self.freeze!r}")
        if self.cache_features and not self.pretrained:
            raise ValueError(f"{where}: cache_features with pretrained=False would train a head on random features")
        if isinstance(self.head_epochs, bool) or not isinstance(self.head_epochs, int) or self.head_epochs < 0:
            raise ValueError(f"{where}: head_epochs must be an int >= 0, got {self.head_epochs!r}")
        if self.head_epochs and (mode == "backbone" or self.cache_features or not self.pretrained):
            raise ValueError(f"{where}: head_epochs trains the classifier alone before the stages freeze={self.freeze!r} "
                             "opens; it needs a pretrained model, freeze 'none' or 'last:K', and no cache_features")
        if self.cache_copies > 1 and not ((self.cache_features or self.head_epochs) and self.augment):
            raise ValueError(f"{where}: cache_copies > 1 needs cache_features (or head_epochs) and an augment "
                             "pipeline (each copy is one augmented pass over the images)")



class FitCollate:
    """Collate uint8 ``(H, W, C)`` samples into the pretrained network's input ``(N, 3, S, S)``.

    Images are resized to ``size`` x ``size`` (bilinear, half-pixel centres; batch
    by batch, vectorised), grey images are repeated to RGB, and values are
    scaled to [0, 1] and normalised with ``mean``/``std``. Picklable.
    """

    def __init__(self, size: int, mean, std, channels: int = 3):
        self.size, self.channels = int(size), int(channels)
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    def images(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``(N, H, W, C)`` -> float32 ``(N, channels, size, size)``."""
        from core.functional.resize import upsample_forward

        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"FitCollate: expected uint8 images (N, H, W, 1 or 3), got {images.dtype} "
                             f"{images.shape}")
        x = images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        if x.shape[2:] != (self.size, self.size):
            x, _ = upsample_forward(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            np.clip(x, 0.0, 1.0, out=x)
        if x.shape[1] != self.channels:
            if x.shape[1] != 1:
                raise ValueError(f"FitCollate: cannot turn {x.shape[1]}-channel images into {self.channels}")
            x = np.repeat(x, self.channels, axis=1)
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)

    def __call__(self, samples: list):
        images = np.stack([np.asarray(s[0]) for s in samples])
        if images.ndim == 3:
            images = images[..., None]
        return self.images(images), np.asarray([s[1] for s in samples], dtype=np.int64)


# ------------------------------------------------------------------------ data
def few_shot_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` seeded-random examples of every class (all of a class when it has fewer)."""
    rng = np.random.default_rng([seed, 11])
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keep.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(keep))


def load_finetune_data(config: FinetuneConfig):
    """``(train_dataset, test_dataset)`` cut to ``per_class`` / ``train_limit`` / ``test_limit``."""
    from .classification import load_split

    size = (config.img_size, config.img_size)
    train_ds = load_split(config.dataset, "train", config.data_dir, "RGB", size)
    test_ds = load_split(config.dataset, "test", config.data_dir, "RGB", size)
    if list(test_ds.classes) != list(train_ds.classes):
        raise ValueError(f"dataset {config.dataset}: the test split's classes {test_ds.classes} differ from the "
                         f"training split's {train_ds.classes}")
    if config.per_class is not None:
        train_ds = train_ds.subset(few_shot_indices(train_ds.labels, config.per_class, config.seed))
    if config.train_limit is not None and config.train_limit < len(train_ds):
        keep = np.random.default_rng([config.seed, 7]).permutation(len(train_ds))[:config.train_limit]
        train_ds = train_ds.subset(np.sort(keep))
    if config.test_limit is not None and config.test_limit < len(test_ds):
        keep = np.random.default_rng([config.seed, 13]).permutation(len(test_ds))[:config.test_limit]
        test_ds = test_ds.subset(np.sort(keep))
    return train_ds, test_ds


def _split(config: FinetuneConfig, train_ds):
    if config.val_fraction <= 0:
        return train_ds, None
    per_class_min = int(train_ds.class_counts().min())
    if per_class_min * config.val_fraction < 1:
        raise ValueError(f"val_fraction {config.val_fraction} holds out no image of some class (the smallest class "
                         f"has {per_class_min}); use --val-fraction 0 for few-shot data")
    fit, val = train_val_split(train_ds, config.val_fraction, stratify=True, seed=config.seed)
    return train_ds.subset(fit.indices), train_ds.subset(val.indices)


def _batches(dataset, collate: FitCollate, batch_size: int, transform=None, seed=0, copy=0):
    """Float batches of ``dataset`` in order; ``transform`` (augmentation) seeded per (seed, copy, index)."""
    from core.data import apply_transform, check_transform

    style = check_transform(transform, "finetune augmentation")
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(len(dataset), start + batch_size))
        if transform is None:
            yield collate.images(_nhwc(dataset.images[start:idx.stop]))
        else:
            imgs = [apply_transform(transform, style, dataset.load_image(i), np.random.default_rng([seed, copy, i]))
                    for i in idx]
            yield collate.images(_nhwc(np.stack(imgs)))


def _nhwc(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images


# ---------------------------------------------------------------- training
@dataclass
class FinetuneResult:
    """What :func:`finetune` returns."""

    model: object
    entry: object
    spec: object  # vision.classification.ClassifierSpec
    history: list
    freeze: object  # transfer.FreezeReport
    feature_seconds: float  # time spent embedding images for the cache (0 when uncached or reused)
    train_seconds: float


def build_finetune_optimizer(config: FinetuneConfig, model, head_only: bool = False):
    """Adam / AdamW / momentum SGD over :func:`param_groups` (smaller rate for the backbone)."""
    from core import optim

    groups = param_groups(model, config.lr, config.backbone_lr_scale, config.weight_decay, head_only=head_only)
    if config.optimizer == "adam":
        return optim.Adam(groups, lr=config.lr)
    if config.optimizer == "adamw":
        return optim.AdamW(groups, lr=config.lr)
    return optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)


def _cache_key(config: FinetuneConfig, entry, train_ds) -> str:
    parts = {k: getattr(config, k) for k in ("model", "weights", "dataset", "img_size", "augment", "cache_copies",
                                             "val_fraction", "per_class", "train_limit", "seed")}
    parts["labels"] = hashlib.sha256(np.ascontiguousarray(train_ds.labels).tobytes()).hexdigest()
    parts["entry"] = entry.sha256
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _cached_features(config, model, entry, fit_ds, val_ds, collate, run_dir, on_batch):
    """``(fit_x (copies*N, D), fit_y, val_x, val_y, seconds)``, from ``run_dir/features.npz`` when it matches."""
    import time

    from core.serialization import load_npz, save_npz

    from .classification import make_augmentation

    key = _cache_key(config, entry, fit_ds)
    path = None if run_dir is None else Path(run_dir) / "features.npz"
    if path is not None and path.is_file():
        arrays, meta = load_npz(path)
        if isinstance(meta, dict) and meta.get("key") == key:
            val = (arrays["val_x"], arrays["val_y"]) if "val_x" in arrays else (None, None)
            return arrays["fit_x"], arrays["fit_y"], *val, 0.0
    start = time.perf_counter()
    pipeline = make_augmentation(config.augment, fit_ds.image_shape[:2])
    total = len(fit_ds) * config.cache_copies + (0 if val_ds is None else len(val_ds))
    done = [0]

    def progress(n, _):
        if on_batch is not None:
            on_batch(done[0] + n, total)

    feats = []
    for c in range(config.cache_copies):
        feats.append(extract_features(model, _batches(fit_ds, collate, 64, pipeline, config.seed, c),
                                      on_batch=progress))
        done[0] += len(fit_ds)
    fit_x = np.concatenate(feats)
    fit_y = np.tile(fit_ds.labels, config.cache_copies)
    val_x = val_y = None
    if val_ds is not None:
        val_x = extract_features(model, _batches(val_ds, collate, 64), on_batch=progress)
        val_y = val_ds.labels.copy()
    seconds = time.perf_counter() - start
    if path is not None:
        arrays = {"fit_x": fit_x, "fit_y": fit_y}
        if val_x is not None:
            arrays.update(val_x=val_x, val_y=val_y)
        save_npz(path, arrays, metadata={"key": key})
    return fit_x, fit_y, val_x, val_y, seconds


def finetune(config: FinetuneConfig, run_dir=None, callbacks=(), progress: bool = True, resume: bool = False,
             data=None, on_feature_batch=None) -> FinetuneResult:
    """Fine-tune ``config.model`` from its pretrained weights on ``config.dataset``.

    With ``config.head_epochs > 0`` the new classifier first trains alone on
    cached backbone features (a linear probe, in ``run_dir/head``), and only then
    do the stages ``config.freeze`` opens train with it, so fine-tuning starts
    from a sensible classifier instead of a random one (Kumar et al. 2022, LP-FT;
    fastai's ``fine_tune(freeze_epochs=...)``).

    Args:
        run_dir: the Trainer writes ``metrics.csv``, ``learning_curves.png`` and
            ``checkpoints/{last,best}.npz`` there; ``config.json`` is written
            first; the cached mode keeps ``features.npz`` there.
        resume: continue from ``run_dir/checkpoints/last.npz`` (features are reused).
        data: optional ``(train_dataset, test_dataset)`` from :func:`load_finetune_data`.
        on_feature_batch: ``f(done, total)`` progress of the feature extraction.
    """
    import time

    from core.serialization import atomic_write_bytes

    from .classification import ClassifierSpec

    train_ds, _ = data if data is not None else load_finetune_data(config)
    model, entry = pretrained_backbone(config.model, train_ds.num_classes, config.weights,
                                       pretrained=config.pretrained, rng=config.seed)
    fit_ds, val_ds = _split(config, train_ds)
    collate = FitCollate(config.img_size, entry.mean, entry.std)
    spec = ClassifierSpec(model=config.model, num_classes=train_ds.num_classes, in_channels=3,
                          input_size=(config.img_size, config.img_size), classes=list(train_ds.classes),
                          mean=list(entry.mean), std=list(entry.std), dataset=config.dataset)
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        payload = {"config": config.to_dict(), "spec": spec.to_dict()}
        atomic_write_bytes(Path(run_dir) / "config.json", json.dumps(payload, indent=2).encode())
    start = time.perf_counter()
    feature_seconds = 0.0
    if config.head_epochs:
        probe = replace(config, freeze="backbone", cache_features=True, epochs=config.head_epochs, head_epochs=0)
        apply_freeze(model, "backbone")
        _, feature_seconds = _fit(probe, model, fit_ds, val_ds, collate, entry,
                                  None if run_dir is None else Path(run_dir) / "head", (), progress, resume,
                                  on_feature_batch)
    bn_stats = config.bn_stats if config.bn_stats != "auto" else ("frozen" if config.pretrained else "update")
    report = apply_freeze(model, config.freeze, bn_stats=bn_stats)
    history, seconds = _fit(config, model, fit_ds, val_ds, collate, entry, run_dir, callbacks, progress, resume,
                            on_feature_batch)
    feature_seconds += seconds
    model.eval()
    return FinetuneResult(model, entry, spec, history, report, feature_seconds,
                          time.perf_counter() - start - feature_seconds)


def _fit(config, model, fit_ds, val_ds, collate, entry, run_dir, callbacks, progress, resume, on_feature_batch):
    """Train what ``apply_freeze`` left trainable (the head alone on cached features when asked);
    returns ``(history, seconds spent embedding)``."""
    from core.trainer import Trainer

    from .classification import make_augmentation

    feature_seconds = 0.0
    if config.cache_features:
        fit_x, fit_y, val_x, val_y, feature_seconds = _cached_features(config, model, entry, fit_ds, val_ds,
                                                                       collate, run_dir, on_feature_batch)
        trained = classifier_head(model)
        loader = DataLoader(ArrayDataset(fit_x, fit_y), batch_size=config.batch_size, shuffle=True,
                            seed=config.seed)
        val_loader = None if val_x is None else DataLoader(ArrayDataset(val_x, val_y), batch_size=500,
                                                           shuffle=False)
    else:
        trained = model
        pipeline = make_augmentation(config.augment, fit_ds.image_shape[:2])
        fit = fit_ds.subset(np.arange(len(fit_ds)))
        fit.transform = pipeline
        loader = DataLoader(fit, batch_size=config.batch_size, shuffle=True, seed=config.seed, collate=collate)
        val_loader = None if val_ds is None else DataLoader(val_ds, batch_size=64, shuffle=False, collate=collate)

    optimizer = build_finetune_optimizer(config, trained, head_only=config.cache_features)
    schedule = None
    if config.schedule == "cosine":
        from core.schedules import CosineAnnealingLR

        schedule = CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * len(loader)))
    trainer = Trainer(trained, CrossEntropyLoss(label_smoothing=config.label_smoothing), optimizer,
                      schedule=schedule, schedule_interval="step", callbacks=list(callbacks), run_dir=run_dir,
                      monitor="val_loss" if val_loader is not None else "loss", progress=progress)
    return trainer.fit(loader, val_loader, epochs=config.epochs, resume=resume), feature_seconds


def predict_dataset(model, dataset, collate: FitCollate, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities ``(N, K)`` of every image of ``dataset`` in eval semantics (fast path when the model has one)."""
    from core.functional.activations import softmax

    was = model.training
    model.eval()
    try:
        out = []
        for x in _batches(dataset, collate, batch_size):
            logits = model.infer(x) if hasattr(model, "infer") else model(x)
            out.append(softmax(np.asarray(logits, np.float32), axis=1))
    finally:
        model.train(was)
    return np.concatenate(out)
