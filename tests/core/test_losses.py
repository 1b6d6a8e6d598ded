"""Losses: gradients through the harness, values against direct formulas, stability, reductions, errors."""
import math

import numpy as np
import pytest

from core.losses import BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, MSELoss, SmoothL1Loss
from tests.harness import assert_loss_gradients


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def labels(n, k, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


def log_softmax_ref(x, axis=1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


REDUCTIONS = ["mean", "sum", "none"]


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss_cls, kwargs", [
    (MSELoss, {}), (MSELoss, {"half": True}), (HuberLoss, {"delta": 0.7}), (SmoothL1Loss, {"beta": 0.5}),
    (SmoothL1Loss, {"beta": 0.0}), (BCEWithLogitsLoss, {}),
])
def test_elementwise_loss_gradients(loss_cls, kwargs, reduction):
    pred = 2 * randn(4, 3)
    target = np.random.default_rng(1).random((4, 3)) if loss_cls is BCEWithLogitsLoss else randn(4, 3, seed=1)
    if kwargs.get("beta") == 0.0:  # L1 has a kink at pred == target
        pred = target + np.where(pred - target >= 0, 0.1, -0.1) + (pred - target)
    assert_loss_gradients(loss_cls(reduction=reduction, **kwargs), pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.1}, {"ignore_index": 2},
                                    {"label_smoothing": 0.2, "ignore_index": 0}])
def test_cross_entropy_label_gradients(kwargs, reduction):
    target = np.array([2, 0, 1, 4, 2, 3])
    assert_loss_gradients(CrossEntropyLoss(reduction=reduction, **kwargs), 2 * randn(6, 5), target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_cross_entropy_soft_target_gradients(smoothing, reduction):
    one_hot = np.eye(4)[[1, 3, 0]]
    soft = np.random.default_rng(2).dirichlet(np.ones(4), size=3)
    for target in (one_hot, soft):
        assert_loss_gradients(CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction), randn(3, 4), target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_segmentation_gradients(reduction):
    target = np.random.default_rng(3).integers(0, 3, size=(2, 4, 3))
    target[0, 0, :2] = 255
    loss = CrossEntropyLoss(ignore_index=255, label_smoothing=0.1, reduction=reduction)
    assert_loss_gradients(loss, randn(2, 3, 4, 3), target)


# ----------------------------------------------------------------------- values
def test_cross_entropy_value_matches_formula():
    x, t = randn(5, 4), labels(5, 4)
    logp = log_softmax_ref(x)
    value = CrossEntropyLoss()(x, t)
    assert isinstance(value, float)
    assert value == pytest.approx(-logp[np.arange(5), t].mean(), rel=1e-12)
    assert CrossEntropyLoss(reduction="sum")(x, t) == pytest.approx(-logp[np.arange(5), t].sum(), rel=1e-12)
    eps = 0.1
    smoothed = (1 - eps) * np.eye(4)[t] + eps / 4
    assert CrossEntropyLoss(label_smoothing=eps)(x, t) == pytest.approx(-(smoothed * logp).sum(1).mean(), rel=1e-12)
    # one-hot targets give the same loss and gradient as integer labels
    hard, soft = CrossEntropyLoss(), CrossEntropyLoss()
    assert hard(x, t) == pytest.approx(soft(x, np.eye(4)[t]), rel=1e-12)
    np.testing.assert_allclose(hard.backward(), soft.backward(), atol=1e-15)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    x, t = randn(6, 3), labels(6, 3)
    loss = CrossEntropyLoss()
    loss(x, t)
    p = np.exp(log_softmax_ref(x))
    np.testing.assert_allclose(loss.backward(), (p - np.eye(3)[t]) / 6, atol=1e-15)
    np.testing.assert_allclose(loss.backward(), loss.backward())  # backward does not consume its cache


def test_ignore_index_excluded_from_mean_and_gradient():
    x, t = randn(6, 4), np.array([1, -100, 3, 0, -100, 2])
    loss = CrossEntropyLoss(ignore_index=-100)
    keep = t != -100
    ref = CrossEntropyLoss()(x[keep], t[keep])
    assert loss(x, t) == pytest.approx(ref, rel=1e-12)
    g = loss.backward()
    np.testing.assert_array_equal(g[~keep], 0.0)
    per_sample = CrossEntropyLoss(ignore_index=-100, reduction="none")(x, t)
    np.testing.assert_array_equal(per_sample[~keep], 0.0)
    everything_ignored = CrossEntropyLoss(ignore_index=7)
    assert math.isnan(everything_ignored(x[:2], np.array([7, 7])))
    np.testing.assert_array_equal(everything_ignored.backward(), 0.0)


def test_uint8_masks_with_ignore_label():
    x = randn(2, 3, 4, 4)
    mask = np.random.default_rng(5).integers(0, 3, size=(2, 4, 4)).astype(np.uint8)
    mask[0, 0] = 255  # the usual "void" border label of segmentation masks
    loss = CrossEntropyLoss(ignore_index=255)
    keep = mask != 255
    ref = -log_softmax_ref(x).transpose(0, 2, 3, 1)[keep, mask[keep]].mean()
    assert loss(x, mask) == pytest.approx(ref, rel=1e-12)
    np.testing.assert_array_equal(loss.backward().transpose(0, 2, 3, 1)[~keep], 0.0)


def test_cross_entropy_segmentation_matches_flattened():
    x = randn(2, 3, 4, 5)
    t = np.random.default_rng(4).integers(0, 3, size=(2, 4, 5))
    flat_x = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    seg, flat = CrossEntropyLoss(label_smoothing=0.1), CrossEntropyLoss(label_smoothing=0.1)
    assert seg(x, t) == pytest.approx(flat(flat_x, t.reshape(-1)), rel=1e-12)
    np.testing.assert_allclose(seg.backward().transpose(0, 2, 3, 1).reshape(-1, 3), flat.backward(), atol=1e-15)
    assert CrossEntropyLoss(reduction="none")(x, t).shape == (2, 4, 5)


def test_regression_loss_values():
    pred = np.array([0.0, 1.0, -3.0, 0.25])
    target = np.array([0.5, 1.0, 0.0, -0.25])
    d = pred - target
    assert MSELoss()(pred, target) == pytest.approx(np.mean(d ** 2))
    assert MSELoss(reduction="sum", half=True)(pred, target) == pytest.approx(0.5 * np.sum(d ** 2))  # the book's form
    huber = np.where(np.abs(d) <= 1.0, 0.5 * d ** 2, np.abs(d) - 0.5)
    np.testing.assert_allclose(HuberLoss(reduction="none")(pred, target), huber)
    np.testing.assert_allclose(HuberLoss(delta=2.0, reduction="none")(pred, target),
                               np.where(np.abs(d) <= 2, 0.5 * d ** 2, 2 * (np.abs(d) - 1)))
    np.testing.assert_allclose(SmoothL1Loss(beta=2.0, reduction="none")(pred, target),
                               HuberLoss(delta=2.0, reduction="none")(pred, target) / 2)
    np.testing.assert_allclose(SmoothL1Loss(beta=0.0, reduction="none")(pred, target), np.abs(d))
    loss = HuberLoss(delta=1.0)
    loss(pred, target)
    np.testing.assert_allclose(loss.backward(), np.clip(d, -1, 1) / 4)  # bounded gradient


def test_bce_with_logits_value():
    x = np.array([-3.0, -0.5, 0.0, 2.0])
    t = np.array([0.0, 1.0, 0.3, 1.0])
    s = 1 / (1 + np.exp(-x))
    ref = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    np.testing.assert_allclose(BCEWithLogitsLoss(reduction="none")(x, t), ref, rtol=1e-12)
    loss = BCEWithLogitsLoss(reduction="sum")
    loss(x, t)
    np.testing.assert_allclose(loss.backward(), s - t, rtol=1e-12)


# -------------------------------------------------------------------- stability
def test_extreme_logits_are_finite():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=np.float32)
    t = np.array([1, 2])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ce = CrossEntropyLoss(label_smoothing=0.1)
        value = ce(x, t)
        grad = ce.backward()
        bce = BCEWithLogitsLoss()
        b = bce(x, np.array([[1, 0, 1], [0, 1, 0]], np.float32))
        bgrad = bce.backward()
    assert math.isfinite(value) and np.isfinite(grad).all()
    assert math.isfinite(b) and np.isfinite(bgrad).all()
    assert CrossEntropyLoss()(x[:1], np.array([1])) == pytest.approx(2e4, rel=1e-6)  # -log p = 2e4 exactly
    assert grad.dtype == np.float32


# ------------------------------------------------------------------ reductions
@pytest.mark.parametrize("make, pred, target", [
    (lambda r: CrossEntropyLoss(reduction=r), randn(5, 3), labels(5, 3)),
    (lambda r: CrossEntropyLoss(label_smoothing=0.1, ignore_index=1, reduction=r), randn(5, 3), labels(5, 3)),
    (lambda r: HuberLoss(reduction=r), randn(5), randn(5, seed=1)),
    (lambda r: MSELoss(reduction=r), randn(5, 2), randn(5, 2, seed=1)),
], ids=["ce", "ce-smooth-ignore", "huber", "mse"])
def test_reduction_none_weights_each_sample_by_dout(make, pred, target):
    loss = make("none")
    per_sample = loss(pred, target)
    assert per_sample.shape == (pred.shape if per_sample.ndim == pred.ndim else pred.shape[:1])
    assert per_sample.sum() == pytest.approx(make("sum")(pred, target), rel=1e-12)
    w = np.array([0.5, 2.0, 0.0, 1.0, 3.0])  # e.g. prioritised-replay importance weights
    g = loss.backward(w.reshape((5,) + (1,) * (per_sample.ndim - 1)))
    for i in range(5):  # each sample's own gradient, scaled by its weight
        one = make("sum")
        one(pred[i:i + 1], target[i:i + 1])
        np.testing.assert_allclose(g[i:i + 1], w[i] * one.backward(), atol=1e-14)


# ---------------------------------------------------------------------- errors
def test_cross_entropy_bad_targets():
    x = randn(3, 4)
    with pytest.raises(ValueError, match=r"target contains class 4, outside \[0, 3\] for K=4"):
        CrossEntropyLoss()(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="class -1"):
        CrossEntropyLoss()(x, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="class 9.*ignore_index=255"):
        CrossEntropyLoss(ignore_index=255)(x, np.array([255, 9, 1]))
    with pytest.raises(TypeError, match="integer dtype, got float64"):
        CrossEntropyLoss()(x, np.array([0.0, 1.0, 2.0]))
    expected = r"target shape \(3, 2\) fits neither labels \(3,\) nor probabilities \(3, 4\)"
    with pytest.raises(ValueError, match=expected):
        CrossEntropyLoss()(x, np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"expected logits \(N, K\)"):
        CrossEntropyLoss()(np.zeros(4), np.array(1))
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)


def test_loss_argument_errors():
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of"):
        MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"HuberLoss: target shape \(3,\) differs from pred shape \(3, 1\)"):
        HuberLoss()(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="MSELoss pred.*floating-point"):
        MSELoss()(np.zeros(3, np.int64), np.zeros(3))
    with pytest.raises(RuntimeError, match="before forward"):
        BCEWithLogitsLoss().backward()
    loss = MSELoss()
    loss(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="dout must be a scalar for reduction='mean'"):
        loss.backward(np.ones(3))
    loss = MSELoss(reduction="none")
    loss(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"dout of shape \(4,\) does not broadcast"):
        loss.backward(np.ones(4))
    with pytest.raises(ValueError, match=r"dout of shape \(2, 3\) does not broadcast to the loss shape \(3,\)"):
        loss.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="delta"):
        HuberLoss(delta=0.0)
