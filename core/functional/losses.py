"""Loss math as pure forward/backward pairs.

Elementwise losses come as ``name(...) -> per-element loss`` and
``name_grad(...) -> d(per-element loss)/d(pred)``; ``reduce_loss`` and
``reduction_weight`` apply ``reduction="mean"|"sum"|"none"`` to both
directions the same way. The softmax cross-entropy is fused (its gradient is
``softmax - target``) and returns a ``CrossEntropyCache`` for its backward.
``core.losses`` wraps these as loss objects.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module

__all__ = [
    "REDUCTIONS", "check_reduction", "check_dout", "reduce_loss", "reduction_weight", "log_softmax",
    "mse", "mse_grad", "huber", "huber_grad", "smooth_l1", "smooth_l1_grad",
    "bce_with_logits", "bce_with_logits_grad", "CrossEntropyCache",
    "softmax_cross_entropy", "softmax_cross_entropy_backward",
]

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, where: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def reduce_loss(per_element, reduction: str, count=None):
    """``mean`` (over ``count`` elements, default all) / ``sum`` -> Python float; ``none`` -> the array."""
    if reduction == "none":
        return per_element
    total = float(per_element.sum())
    if reduction == "sum":
        return total
    n = per_element.size if count is None else count
    return total / n if n else float("nan")


def reduction_weight(dout, reduction: str, count: int):
    """d(reduced loss)/d(per-element loss) times ``dout``: a scalar for mean/sum, ``dout`` itself for none."""
    if reduction == "mean":
        return dout / count if count else dout * 0.0
    return dout


def check_dout(dout, dtype, shape, reduction: str, where: str):
    """``dout`` as an array of ``dtype``: a scalar for mean/sum, broadcastable to the loss ``shape`` for none."""
    xp = get_array_module(dout)
    dout = xp.asarray(dout, dtype=dtype)
    if reduction != "none" and dout.ndim != 0:
        raise ValueError(f"{where}.backward: dout must be a scalar for reduction={reduction!r}, got shape {dout.shape}")
    if reduction == "none" and dout.ndim and dout.shape != tuple(shape):
        try:
            fits = np.broadcast_shapes(dout.shape, tuple(shape)) == tuple(shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{where}.backward: dout of shape {dout.shape} does not broadcast to the loss shape {tuple(shape)}"
            )
    return dout


def log_softmax(x, axis: int = 1):
    """``x - logsumexp(x)`` along ``axis``, computed after subtracting the max (no overflow, no log(0))."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


# ------------------------------------------------------------- regression
def mse(pred, target, half: bool = False):
    """``(pred - target)^2``, halved when ``half`` (the book's ``0.5 * sum((y - t)^2)`` form)."""
    d = pred - target
    d *= d
    return d * 0.5 if half else d


def mse_grad(pred, target, half: bool = False):
    d = pred - target
    return d if half else d * 2


def huber(diff, delta: float = 1.0):
    """``0.5 d^2`` for ``|d| <= delta``, else ``delta (|d| - 0.5 delta)`` (Huber 1964)."""
    xp = get_array_module(diff)
    a = xp.abs(diff)
    return xp.where(a <= delta, 0.5 * diff * diff, delta * (a - 0.5 * delta))


def huber_grad(diff, delta: float = 1.0):
    """``clip(d, -delta, delta)``: the gradient is bounded, which is why DQN uses it."""
    xp = get_array_module(diff)
    # maximum/minimum rather than clip: the same values (NaN included) without clip's Python wrapper,
    # which costs more than the arithmetic on a DQN batch
    return xp.minimum(xp.maximum(diff, -delta), delta)


def smooth_l1(diff, beta: float = 1.0):
    """``0.5 d^2 / beta`` for ``|d| < beta``, else ``|d| - 0.5 beta``; ``beta = 0`` is L1. Equals huber / beta."""
    xp = get_array_module(diff)
    if beta == 0:
        return xp.abs(diff)
    return huber(diff, beta) / diff.dtype.type(beta)


def smooth_l1_grad(diff, beta: float = 1.0):
    xp = get_array_module(diff)
    if beta == 0:
        return xp.sign(diff)
    return xp.clip(diff / diff.dtype.type(beta), -1, 1)


def bce_with_logits(logits, target):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``target`` in [0, 1], per element.

    ``max(x, 0) - x t + log(1 + exp(-|x|))`` never exponentiates a positive
    number, so it is finite for any finite logit.
    """
    xp = get_array_module(logits)
    return xp.maximum(logits, 0) - logits * target + xp.log1p(xp.exp(-xp.abs(logits)))


def bce_with_logits_grad(logits, target):
    """``sigmoid(x) - t``."""
    xp = get_array_module(logits)
    e = xp.exp(-xp.abs(logits))
    return xp.where(logits >= 0, 1, e) / (1 + e) - target


# ---------------------------------------------------- softmax cross-entropy
class CrossEntropyCache(NamedTuple):
    """What ``softmax_cross_entropy_backward`` needs.

    ``probs``: softmax of the logits ``(N, K, *d)``. Hard targets: ``labels``
    ``(N, *d)`` (ignored positions replaced by 0) and ``valid`` (bool mask or
    None when nothing is ignored). Soft targets: ``dist`` (already smoothed).
    """

    probs: object
    labels: object
    valid: object
    dist: object
    label_smoothing: float


def _class_targets(logits, target, ignore_index, where: str):
    """Validate integer labels ``(N, *d)`` against ``K = logits.shape[1]``; return (labels, valid)."""
    xp = get_array_module(logits)
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{where}: class-index targets of shape {target.shape} must have an integer dtype, got "
            f"{target.dtype} (cast with .astype(int), or give probabilities of shape {logits.shape})"
        )
    k = logits.shape[1]
    valid = None
    if ignore_index is not None:
        valid = target != ignore_index
        if valid.all():
            valid = None
    checked = target if valid is None else target[valid]
    if checked.size and (int(checked.min()) < 0 or int(checked.max()) >= k):
        bad = checked[(checked < 0) | (checked >= k)]
        hint = "" if ignore_index is None else f" (ignore_index={ignore_index})"
        raise ValueError(
            f"{where}: target contains class {int(bad.flat[0])}, outside [0, {k - 1}] for K={k} classes{hint}"
        )
    labels = target if valid is None else xp.where(valid, target, 0)
    return labels, valid


def softmax_cross_entropy(logits, target, *, label_smoothing: float = 0.0, ignore_index=None,
                          where: str = "softmax_cross_entropy"):
    """Per-position cross-entropy of ``softmax(logits)`` along axis 1, and the backward cache.

    Args:
        logits: ``(N, K)`` or ``(N, K, d1, ...)`` floating scores.
        target: integer labels ``(N,)`` / ``(N, d1, ...)``, or probabilities
            (e.g. one-hot) with the logits' shape.
        label_smoothing: ``eps`` in [0, 1]; the target distribution becomes
            ``(1 - eps) * target + eps / K`` (Szegedy et al. 2016; PyTorch's definition).
        ignore_index: label whose positions get loss 0 and gradient 0 (hard labels only).

    Returns:
        ``(loss, cache)`` with ``loss`` of shape ``(N, d1, ...)`` and ``valid``
        in the cache telling which positions count (None: all).
    """
    xp = get_array_module(logits)
    k = logits.shape[1]
    logp = log_softmax(logits, axis=1)
    if target.shape == logits.shape:
        dist = target.astype(logits.dtype, copy=False)
        if label_smoothing:
            dist = dist * (1 - label_smoothing) + label_smoothing / k
        loss = -(dist * logp).sum(axis=1)
        return loss, CrossEntropyCache(xp.exp(logp), None, None, dist, label_smoothing)

    labels, valid = _class_targets(logits, target, ignore_index, where)
    if logits.ndim == 2:
        nll = -logp[xp.arange(logits.shape[0]), labels]
    else:
        nll = -xp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    if label_smoothing:
        # Smoothing mass eps/K on every class: eps * mean_k(-log p_k) added to (1 - eps) * nll.
        loss = (1 - label_smoothing) * nll - label_smoothing * logp.mean(axis=1)
    else:
        loss = nll
    if valid is not None:
        loss = loss * valid
    probs = xp.exp(logp, out=logp)
    return loss, CrossEntropyCache(probs, labels, valid, None, label_smoothing)


def softmax_cross_entropy_backward(cache: CrossEntropyCache, dloss):
    """d(sum of ``dloss * loss``)/d(logits) = ``dloss * (sum_k(t) * softmax - t)`` per position.

    ``dloss`` is a scalar or an array of the per-position loss shape ``(N, *d)``.
    """
    xp = get_array_module(cache.probs)
    probs = cache.probs
    dtype = probs.dtype
    dloss = xp.asarray(dloss, dtype=dtype)
    w = dloss[:, None] if dloss.ndim else dloss  # broadcast over the class axis
    if cache.dist is not None:
        mass = cache.dist.sum(axis=1, keepdims=True)  # 1 for proper distributions
        return (probs * mass - cache.dist) * w
    eps = cache.label_smoothing
    if cache.valid is not None:
        valid = cache.valid[:, None].astype(dtype)
        w = w * valid
    grad = probs * w
    if eps:
        grad -= (eps / probs.shape[1]) * w
    hit = (1 - eps) * w
    if probs.ndim == 2:
        rows = xp.arange(probs.shape[0])
        grad[rows, cache.labels] -= hit[:, 0] if hit.ndim else hit
    else:
        idx = cache.labels[:, None]
        picked = xp.take_along_axis(grad, idx, axis=1)
        picked -= hit
        xp.put_along_axis(grad, idx, picked, axis=1)
    return grad
