"""Loss objects: parameter-free Modules with ``loss = criterion(pred, target)`` and ``criterion.backward(dout)``.

``reduction="mean"`` or ``"sum"`` returns a Python float; ``"none"`` returns
the per-element (per-sample for cross-entropy) array. ``backward(dout=1.0)``
returns d(loss)/d(pred) with ``pred``'s shape and dtype; with
``reduction="none"``, ``dout`` may be an array of per-element weights
(importance-sampling weights in prioritised replay, for instance).
The math lives in ``core.functional.losses``.
"""
from __future__ import annotations

from . import functional as F
from .backend import get_array_module
from .functional.losses import check_dout, check_reduction
from .module import Module
from .layers._validation import float_input, require_forward

__all__ = ["MSELoss", "HuberLoss", "SmoothL1Loss", "BCEWithLogitsLoss", "CrossEntropyLoss"]


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction, type(self).__name__)
        self._cache = None

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _ElementwiseLoss(_Loss):
    """``pred`` and ``target`` of the same shape; the loss is a sum/mean of per-element terms."""

    def _elementwise(self, pred, target):
        raise NotImplementedError(f"{type(self).__name__} must implement _elementwise()")

    def _elementwise_grad(self, pred, target):
        raise NotImplementedError(f"{type(self).__name__} must implement _elementwise_grad()")

    def forward(self, pred, target):
        name = type(self).__name__
        pred = float_input(pred, f"{name} pred")
        xp = get_array_module(pred)
        target = xp.asarray(target)
        if target.shape != pred.shape:
            raise ValueError(f"{name}: target shape {target.shape} differs from pred shape {pred.shape}")
        if target.dtype.kind not in "fiub":
            raise TypeError(f"{name}: target must be numeric, got dtype {target.dtype}")
        target = target.astype(pred.dtype, copy=False)
        self._cache = (pred, target)
        return F.reduce_loss(self._elementwise(pred, target), self.reduction)

    def backward(self, dout=1.0):
        pred, target = require_forward(self._cache, type(self).__name__)
        dout = check_dout(dout, pred.dtype, pred.shape, self.reduction, type(self).__name__)
        w = F.reduction_weight(dout, self.reduction, pred.size)
        return self._elementwise_grad(pred, target) * w


class MSELoss(_ElementwiseLoss):
    """Mean squared error ``mean((pred - target)^2)``.

    ``half=True`` multiplies by 1/2 (gradient ``pred - target``); the book's
    ``mean_squared_error = 0.5 * sum((y - t)^2)`` is ``MSELoss(reduction="sum", half=True)``.
    """

    def __init__(self, reduction: str = "mean", half: bool = False):
        super().__init__(reduction)
        self.half = bool(half)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, half={self.half}"

    def _elementwise(self, pred, target):
        return F.mse(pred, target, self.half)

    def _elementwise_grad(self, pred, target):
        return F.mse_grad(pred, target, self.half)


class HuberLoss(_ElementwiseLoss):
    """``0.5 d^2`` for ``|d| <= delta``, else ``delta (|d| - delta/2)``; ``d = pred - target``.

    Quadratic near 0, linear (bounded gradient ``delta``) beyond: the DQN loss
    (Mnih et al. 2015 clip the TD error's gradient to [-1, 1]).
    """

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def extra_repr(self) -> str:
        return f"delta={self.delta}, reduction={self.reduction!r}"

    def _elementwise(self, pred, target):
        return F.huber(pred - target, self.delta)

    def _elementwise_grad(self, pred, target):
        return F.huber_grad(pred - target, self.delta)


class SmoothL1Loss(_ElementwiseLoss):
    """``0.5 d^2 / beta`` for ``|d| < beta``, else ``|d| - beta/2`` (= Huber / beta; ``beta=0``: L1)."""

    def __init__(self, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta!r}")
        self.beta = float(beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, reduction={self.reduction!r}"

    def _elementwise(self, pred, target):
        return F.smooth_l1(pred - target, self.beta)

    def _elementwise_grad(self, pred, target):
        return F.smooth_l1_grad(pred - target, self.beta)


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Binary cross-entropy on logits: ``-(t log s(x) + (1 - t) log(1 - s(x)))``, sigmoid fused.

    ``pred`` are logits of any shape, ``target`` probabilities in [0, 1] of the
    same shape; finite for any finite logit. Gradient ``sigmoid(x) - t``.
    """

    def _elementwise(self, pred, target):
        return F.bce_with_logits(pred, target)

    def _elementwise_grad(self, pred, target):
        return F.bce_with_logits_grad(pred, target)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits, softmax fused and computed stably.

    Args:
        label_smoothing: ``eps`` in [0, 1]; targets become ``(1 - eps) onehot + eps/K``.
        ignore_index: a label whose positions count neither in the loss nor in
            the mean's denominator, and get zero gradient (e.g. 255 for
            segmentation borders). Only for integer labels.
        reduction: ``"mean"`` (over non-ignored positions), ``"sum"``, ``"none"``.

    Shapes: ``pred`` logits ``(N, K)`` or ``(N, K, d1, ...)`` (class axis 1);
    ``target`` integer labels ``(N,)`` / ``(N, d1, ...)`` in ``[0, K)``, or
    probabilities (e.g. one-hot) of the logits' shape. ``reduction="none"``
    gives ``(N, d1, ...)``. If every position is ignored the mean is NaN
    (as in PyTorch) and the gradient zero.
    """

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int or None, got {ignore_index!r}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        return (f"label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}, "
                f"reduction={self.reduction!r}")

    def forward(self, pred, target):
        logits = float_input(pred, "CrossEntropyLoss pred")
        xp = get_array_module(logits)
        target = xp.asarray(target)
        if logits.ndim < 2:
            raise ValueError(f"CrossEntropyLoss: expected logits (N, K) or (N, K, d1, ...), got shape {logits.shape}")
        label_shape = logits.shape[:1] + logits.shape[2:]
        if target.shape not in (label_shape, logits.shape):
            raise ValueError(
                f"CrossEntropyLoss: target shape {target.shape} fits neither labels {label_shape} "
                f"nor probabilities {logits.shape} for logits of shape {logits.shape}"
            )
        loss, cache = F.softmax_cross_entropy(
            logits, target, label_smoothing=self.label_smoothing, ignore_index=self.ignore_index,
            where="CrossEntropyLoss",
        )
        count = loss.size if cache.valid is None else int(cache.valid.sum())
        self._cache = (cache, count, loss.shape)
        return F.reduce_loss(loss, self.reduction, count)

    def backward(self, dout=1.0):
        cache, count, shape = require_forward(self._cache, "CrossEntropyLoss")
        dout = check_dout(dout, cache.probs.dtype, shape, self.reduction, "CrossEntropyLoss")
        return F.softmax_cross_entropy_backward(cache, F.reduction_weight(dout, self.reduction, count))
