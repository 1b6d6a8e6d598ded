"""Transfer learning: a pretrained backbone with a new head, freezing, per-group learning rates, cached features.

The pieces ``zerodl finetune`` is built from (book ch. 8.1, "transfer
learning"; Yosinski et al. 2014 for why early layers transfer best):

* :func:`pretrained_backbone` loads a registry checkpoint (``vision.weights``)
  into the architecture built for ``num_classes`` outputs: every weight but
  the classifier's is taken from the file, the classifier is freshly
  initialised, and any other mismatch is an error naming the keys.
* :func:`apply_freeze` makes ``"none"``, ``"backbone"`` (all but the
  classifier), ``"all"`` or ``"last:K"`` (the last K stages before the
  classifier, and the classifier) trainable. Every part whose parameters are
  all frozen gets ``keep_eval = True``, so ``model.train()`` leaves its
  BatchNorm on the pretrained running statistics (and its stochastic depth
  off); backward stops below the lowest trainable layer
  (``core.module.backward_chain``).
* :func:`param_groups` gives the classifier the base learning rate and the
  trainable backbone ``backbone_lr_scale`` times it (Howard & Ruder 2018's
  discriminative rates), with no weight decay on biases and BatchNorm.
* :func:`extract_features` runs a frozen backbone once per image (and per
  augmented copy) to the pooled embedding; :func:`classifier_head` is the part
  after the embedding, trained on those features in seconds. It shares its
  parameters with the model, so the model is fine-tuned in place.

A model takes part when it has ``stage_prefixes()`` (EfficientNet-Lite,
ResNet), or else its top-level children count as stages; the cached mode also
needs ``embed(x)`` and ``classifier_head()``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from core.layers.batchnorm import _BatchNorm
from core.module import Module
from core.serialization import CheckpointError

__all__ = ["FreezeReport", "parse_freeze", "model_stages", "pretrained_backbone", "apply_freeze", "param_groups",
           "classifier_head", "embed_batch", "extract_features", "FREEZE_HELP"]

FREEZE_HELP = ("none (train everything), backbone (train only the new classifier), all (train nothing), "
               "last:K (the last K stages and the classifier)")


def parse_freeze(freeze) -> tuple[str, int]:
    """``"none" | "backbone" | "all" | "last:K"`` -> ``(mode, K)``; ValueError naming the accepted forms."""
    text = str(freeze).strip().lower()
    if text in ("none", "backbone", "all"):
        return text, 0
    if text.startswith("last:"):
        k = text[5:]
        if k.isdigit() and int(k) >= 1:
            return "last", int(k)
    raise ValueError(f"freeze: expected {FREEZE_HELP}; got {freeze!r}")


def model_stages(model: Module) -> "OrderedDict[str, list[str]]":
    """Stage name -> parameter-name prefixes, input to output; the last stage is the classifier.

    Uses ``model.stage_prefixes()`` when the model defines it; otherwise each
    top-level child holding parameters is a stage of its own.
    """
    if hasattr(model, "stage_prefixes"):
        return OrderedDict(model.stage_prefixes())
    stages = OrderedDict()
    for name, child in model.named_children():
        if child.num_parameters() > 0:
            stages[name] = [name]
    if len(stages) < 2:
        raise ValueError(f"model_stages: {type(model).__name__} has {len(stages)} top-level part(s) with "
                         "parameters; transfer learning needs a backbone and a classifier")
    return stages


@dataclass
class FreezeReport:
    """What :func:`apply_freeze` left trainable."""

    mode: str
    trainable_stages: list
    frozen_stages: list
    trainable_params: int
    frozen_params: int
    eval_batchnorms: int  # BatchNorm layers kept in eval mode

    def describe(self) -> str:
        stages = ", ".join(self.trainable_stages) or "nothing"
        return (f"freeze {self.mode}: training {stages} ({self.trainable_params:,} parameters); "
                f"{self.frozen_params:,} frozen, {self.eval_batchnorms} BatchNorm layers kept in eval mode")


def apply_freeze(model: Module, freeze="backbone", bn_stats: str = "update") -> FreezeReport:
    """Set which stages of ``model`` train (see the module docstring); returns a :class:`FreezeReport`.

    ``bn_stats="frozen"`` also keeps the BatchNorm layers of the *trainable*
    stages on their pretrained running statistics (their scale and shift still
    train). Fine-tuning on small batches of a new domain needs this: batch
    statistics in training and slowly updated running statistics at test time
    disagree, which cost 8 points at 10 Fashion-MNIST images per class here
    (``"update"``: 64%, ``"frozen"``: 73%; Keras' transfer-learning guide gives
    the same advice). Everything is unfrozen first, so calling it again is safe.
    """
    if bn_stats not in ("update", "frozen"):
        raise ValueError(f"apply_freeze: bn_stats must be 'update' or 'frozen', got {bn_stats!r}")
    mode, k = parse_freeze(freeze)
    stages = model_stages(model)
    names = list(stages)
    if mode == "none":
        trainable = names
    elif mode == "all":
        trainable = []
    elif mode == "backbone":
        trainable = names[-1:]
    else:
        if k > len(names) - 1:
            raise ValueError(f"freeze last:{k}: {type(model).__name__} has only {len(names) - 1} stages before "
                             f"its classifier ({', '.join(names[:-1])})")
        trainable = names[-(k + 1):]
    model.unfreeze()
    frozen = [n for n in names if n not in trainable]
    for name in frozen:
        model.freeze(*stages[name])
    eval_bns = 0
    for m in model.modules():
        # A part whose parameters are all frozen runs in eval mode: BatchNorm keeps its pretrained
        # statistics and stochastic depth stays off, so a frozen backbone is a fixed function.
        # Parameter-free modules (dropout before the classifier) keep following train()/eval().
        params = m.parameters()
        m.keep_eval = bool(params) and (not any(p.trainable for p in params)
                                        or (bn_stats == "frozen" and isinstance(m, _BatchNorm)))
        eval_bns += m.keep_eval and isinstance(m, _BatchNorm)
    model.train(model.training)  # apply keep_eval to the current mode
    return FreezeReport(mode if mode != "last" else f"last:{k}", trainable, frozen,
                        model.num_parameters(trainable_only=True),
                        model.num_parameters() - model.num_parameters(trainable_only=True), eval_bns)


def pretrained_backbone(name: str, num_classes: int, path=None, *, pretrained: bool = True, rng=None,
                        dtype=np.float32, verify: bool = True):
    """``(model, entry)``: registry architecture ``name`` with ``num_classes`` outputs and pretrained weights.

    Every parameter and buffer except the entry's classifier (``entry.head``)
    comes from the checkpoint (``path``, or the one the registry finds); the
    classifier is initialised from ``rng``. ``pretrained=False`` returns the
    same architecture randomly initialised (the from-scratch baseline).
    Raises ``CheckpointError`` naming keys when the file does not fit.
    """
    from .weights import get_weights, load_state_dict_any

    entry = get_weights(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"pretrained_backbone: num_classes must be an int >= 2, got {num_classes!r}")
    model = entry.build(num_classes=int(num_classes), rng=rng, dtype=dtype)
    if not pretrained:
        return model, entry
    file = entry.find_file(path)
    if verify and path is None:
        entry.verify(file)
    state = load_state_dict_any(file, key=entry.key, rename=entry.rename or None)
    head = set(entry.head)
    absent = sorted(head - set(state))
    if absent:
        raise CheckpointError(f"{file}: the classifier keys {', '.join(absent)} of {name!r} are not in the "
                              "checkpoint; is it the right architecture?")
    try:
        result = model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)
    except ValueError as e:
        raise CheckpointError(f"{file}: {e}") from None
    missing = sorted(set(result.missing) - head)
    if missing or result.unexpected:
        raise CheckpointError(f"{file}: does not fit {name!r}: missing keys {missing or 'none'}, "
                              f"unexpected keys {list(result.unexpected) or 'none'}")
    return model, entry


def param_groups(model: Module, lr: float, backbone_lr_scale: float = 0.1, weight_decay: float = 0.0,
                 head_only: bool = False) -> list:
    """Optimizer parameter groups over the trainable parameters of ``model``.

    The classifier (the last stage) trains at ``lr``, the rest at
    ``lr * backbone_lr_scale``; 1-d parameters (biases, BatchNorm) get no weight
    decay. Each group carries a ``name`` (``head``/``backbone`` + ``/no_decay``).
    ``head_only=True`` treats all of ``model`` as the classifier (a head trained on cached features).
    """
    if not lr > 0:
        raise ValueError(f"param_groups: lr must be > 0, got {lr!r}")
    if not backbone_lr_scale > 0:
        raise ValueError(f"param_groups: backbone_lr_scale must be > 0, got {backbone_lr_scale!r}")
    head_prefixes = () if head_only else tuple(model_stages(model).values())[-1]
    buckets = OrderedDict()
    for name, p in model.named_parameters(trainable_only=True):
        part = "head" if head_only or any(name == h or name.startswith(h + ".") for h in head_prefixes) else "backbone"
        decay = "" if p.data.ndim > 1 else "/no_decay"
        buckets.setdefault(part + decay, []).append(p)
    groups = []
    for key, params in buckets.items():
        scale = 1.0 if key.startswith("head") else backbone_lr_scale
        groups.append({"name": key, "params": params, "lr": lr * scale,
                       "weight_decay": 0.0 if key.endswith("no_decay") else weight_decay})
    if not groups:
        raise ValueError(f"param_groups: {type(model).__name__} has no trainable parameters (freeze 'all'?)")
    return groups


def classifier_head(model: Module) -> Module:
    """The layers after ``model.embed`` (e.g. dropout + ``_fc``), sharing the model's parameters."""
    if not hasattr(model, "classifier_head") or not hasattr(model, "embed"):
        raise ValueError(f"cached features need a model with embed() and classifier_head(); "
                         f"{type(model).__name__} has not both (train without --cache-features)")
    return model.classifier_head()


def embed_batch(model: Module, x) -> np.ndarray:
    """Pooled backbone features ``(N, D)`` of a float batch ``x (N, C, H, W)`` in eval semantics."""
    if hasattr(model, "infer_embed"):
        return np.asarray(model.infer_embed(x))
    was = model.training
    model.eval()
    try:
        return np.asarray(model.embed(x))
    finally:
        model.train(was)


def extract_features(model: Module, batches, total: int | None = None, on_batch=None) -> np.ndarray:
    """Run the frozen backbone over ``batches`` (an iterable of float ``(n, C, H, W)`` arrays) once.

    Returns float32 features ``(N, D)`` in order; ``on_batch(done, total)`` reports progress.
    """
    out, done = [], 0
    for x in batches:
        out.append(embed_batch(model, x).astype(np.float32, copy=False))
        done += len(x)
        if on_batch is not None:
            on_batch(done, total)
    if not out:
        raise ValueError("extract_features: no images to embed")
    return np.concatenate(out)
