"""Layers: float64 gradient checks through the harness, semantics, statistics, bad input."""
import math

import numpy as np
import pytest

from core.functional import erf, erfc
from core.layers import (GELU, BatchNorm1d, BatchNorm2d, Dropout, Dropout2d, Flatten, Identity, LeakyReLU,
                         Linear, ReLU, ReLU6, Sigmoid, Softmax, Step, Tanh)
from tests.harness import assert_module_gradients


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def away_from(x, kinks, margin=0.05):
    """Move entries of ``x`` at least ``margin`` away from each kink (finite differences straddle kinks)."""
    x = x.copy()
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin)
    return x


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(shape, bias):
    assert_module_gradients(Linear(4, 3, bias=bias, rng=0, dtype=np.float64), randn(*shape))


@pytest.mark.parametrize("layer, kinks, scale", [
    (ReLU(), [0.0], 2.0),
    (LeakyReLU(0.2), [0.0], 2.0),
    (ReLU6(), [0.0, 6.0], 5.0),
    (Sigmoid(), [], 3.0),
    (Tanh(), [], 2.0),
    (GELU(), [], 3.0),
    (GELU(approximate="tanh"), [], 3.0),
    (Softmax(), [], 2.0),
    (Softmax(axis=0), [], 2.0),
    (Softmax(axis=1), [], 2.0),
    (Identity(), [], 1.0),
    (Step(), [0.0], 1.0),
], ids=lambda v: repr(v) if not isinstance(v, (list, float)) else "")
def test_activation_gradients(layer, kinks, scale):
    assert_module_gradients(layer, away_from(scale * randn(3, 4, 5), kinks))


def test_flatten_gradients_and_shapes():
    layer = Flatten()
    x = randn(2, 3, 4, 5)
    assert layer(x).shape == (2, 60)
    assert_module_gradients(layer, x)


@pytest.mark.parametrize("layer_cls, shape", [(Dropout, (4, 6)), (Dropout2d, (3, 4, 2, 2))])
def test_dropout_gradients_with_reset(layer_cls, shape):
    layer = layer_cls(0.4)
    assert_module_gradients(layer, randn(*shape), reset=lambda: setattr(layer, "rng", np.random.default_rng(7)))


@pytest.mark.parametrize("layer, shape", [
    (BatchNorm1d(4), (6, 4)),
    (BatchNorm1d(4), (3, 4, 5)),
    (BatchNorm2d(3), (2, 3, 4, 5)),
    (BatchNorm2d(3, affine=False), (2, 3, 2, 2)),
    (BatchNorm2d(3, track_running_stats=False), (2, 3, 2, 2)),
    (BatchNorm1d(4, momentum=None), (6, 4)),
])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(layer, shape, training):
    layer.astype(np.float64)
    if layer.affine:
        layer.weight.data[:] = 1.0 + 0.3 * randn(layer.num_features, seed=1)
        layer.bias.data[:] = 0.2 * randn(layer.num_features, seed=2)
    if layer.track_running_stats:
        layer.running_mean[:] = 0.1 * randn(layer.num_features, seed=3)
        layer.running_var[:] = 1.5
    layer.train(training)
    report = assert_module_gradients(layer, 1.5 * randn(*shape) + 0.5)
    assert ("weight" in report.errors) == layer.affine


def test_frozen_linear_weight_gets_no_gradient_work():
    layer = Linear(4, 3, rng=0, dtype=np.float64)
    layer.weight.trainable = False
    report = assert_module_gradients(layer, randn(5, 4))
    assert set(report.errors) == {"input0", "bias"}
    layer(randn(5, 4))
    layer.backward(np.ones((5, 3)))
    assert layer.weight.grad is None and layer.bias.grad is not None


def test_linear_without_input_grad_skips_dx():
    layer = Linear(4, 3, rng=0)
    layer.requires_input_grad = False
    layer(np.ones((2, 4), np.float32))
    assert layer.backward(np.ones((2, 3), np.float32)) is None
    np.testing.assert_allclose(layer.weight.grad, np.full((3, 4), 2.0))


# --------------------------------------------------------------------- Linear
def test_linear_forward_layout_and_accumulation():
    layer = Linear(4, 3, rng=1)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,)
    np.testing.assert_array_equal(layer.bias.data, 0.0)
    layer.bias.data[:] = [1.0, 2.0, 3.0]
    x = randn(2, 5, 4).astype(np.float32)
    y = layer(x)
    assert y.shape == (2, 5, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)
    dy = np.ones_like(y)
    layer.backward(dy)
    layer.backward(dy)  # a second use of the same weights adds to the gradient
    np.testing.assert_allclose(layer.bias.grad, np.full(3, 20.0))


def test_linear_casts_float_input_to_weight_dtype():
    layer = Linear(3, 2, rng=0)
    assert layer(np.ones((1, 3), dtype=np.float64)).dtype == np.float32
    assert Linear(3, 2, rng=0, dtype=np.float64)(np.ones((1, 3), np.float32)).dtype == np.float64


def test_linear_seed_and_init():
    a, b = Linear(50, 40, rng=3), Linear(50, 40, rng=3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, Linear(50, 40, rng=4).weight.data)
    big = Linear(400, 500, rng=0)
    assert big.weight.data.std() == pytest.approx(math.sqrt(2 / 400), rel=0.03)  # He normal default
    assert Linear(400, 500, init="xavier_uniform", rng=0).weight.data.std() == pytest.approx(
        math.sqrt(2 / 900), rel=0.03)
    assert Linear(400, 500, init=0.01, rng=0).weight.data.std() == pytest.approx(0.01, rel=0.03)


def test_linear_bad_input():
    layer = Linear(784, 10)
    expected = r"Linear\(in_features=784, .*expected input \(\.\.\., 784\), got shape \(32, 10\)"
    with pytest.raises(ValueError, match=expected):
        layer(np.zeros((32, 10), np.float32))
    with pytest.raises(TypeError, match="Linear.*floating-point.*int64"):
        layer(np.zeros((32, 784), np.int64))
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 3)
    with pytest.raises(ValueError, match="unknown init 'he'"):
        Linear(3, 3, init="he")
    with pytest.raises(TypeError, match="floating dtype"):
        Linear(3, 3, dtype=np.int32)
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(3, 3).backward(np.ones((1, 3), np.float32))


def test_flatten_identity_bad_input():
    with pytest.raises(ValueError, match="Flatten"):
        Flatten()(np.float32(1.0))
    x = np.ones((2, 3), np.float32)
    assert Identity()(x) is x


# ---------------------------------------------------------------- activations
def test_activation_values():
    x = np.array([-1e4, -7.0, -1.0, 0.0, 0.5, 7.0, 1e4], dtype=np.float32)
    np.testing.assert_array_equal(ReLU()(x), [0, 0, 0, 0, 0.5, 7, 1e4])
    np.testing.assert_allclose(LeakyReLU(0.1)(x), [-1e3, -0.7, -0.1, 0, 0.5, 7, 1e4], rtol=1e-6)
    np.testing.assert_array_equal(ReLU6()(x), [0, 0, 0, 0, 0.5, 6, 6])
    np.testing.assert_array_equal(Step()(x), [0, 0, 0, 0, 1, 1, 1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = Sigmoid()(x)
    np.testing.assert_allclose(s, 0.5 * (1 + np.tanh(x.astype(np.float64) / 2)), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(Tanh()(x), np.tanh(x))
    for layer in (ReLU(), LeakyReLU(), ReLU6(), Sigmoid(), Tanh(), GELU(), Softmax(), Step()):
        assert layer(x).dtype == np.float32, type(layer).__name__


def test_gradients_at_kinks_follow_pytorch():
    relu = ReLU()
    relu(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(relu.backward(np.ones(3)), [0.0, 0.0, 1.0])
    relu6 = ReLU6()
    relu6(np.array([-1.0, 0.0, 3.0, 6.0, 7.0]))
    np.testing.assert_array_equal(relu6.backward(np.ones(5)), [0.0, 0.0, 1.0, 0.0, 0.0])
    leaky = LeakyReLU(0.5)
    leaky(np.array([-2.0, 0.0, 2.0]))
    np.testing.assert_array_equal(leaky.backward(np.ones(3)), [0.5, 0.5, 1.0])


def test_softmax_is_stable_and_normalised():
    x = np.array([[1e4, 0.0, -1e4], [3.0, 3.0, 3.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise"):
        y = Softmax()(x)
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-30)
    z = Softmax(axis=0)(randn(4, 3))
    np.testing.assert_allclose(z.sum(axis=0), 1.0)
    with pytest.raises(ValueError, match=r"Softmax\(axis=2\)"):
        Softmax(axis=2)(randn(4, 3))


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-8, 8, 4001), [0.46875, -0.46875, 4.0, -4.0, 27.0, np.inf, -np.inf],
                        np.geomspace(1e-12, 1, 50)])
    ref = np.array([math.erf(v) for v in x])
    ref_c = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(erf(x), ref, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(erfc(x), ref_c, rtol=1e-13, atol=1e-300)  # relative accuracy in the far tail too
    assert np.isnan(erf(np.array([np.nan]))[0])
    assert erf(np.float32(0.5)).dtype == np.float32


def test_gelu_exact_matches_definition():
    x = np.linspace(-10, 10, 201)
    ref = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(GELU()(x), ref, rtol=1e-13, atol=1e-300)
    approx = GELU(approximate="tanh")(x)
    assert np.max(np.abs(approx - ref)) < 1e-3  # the tanh form is an approximation, close but not equal
    with pytest.raises(ValueError, match="approximate"):
        GELU(approximate="fast")


@pytest.mark.parametrize("layer", [ReLU(), Sigmoid(), Softmax(), GELU(), Dropout(), BatchNorm1d(3)],
                         ids=lambda m: type(m).__name__)
def test_integer_input_raises_type_error(layer):
    with pytest.raises(TypeError, match=f"{type(layer).__name__}.*floating-point"):
        layer(np.ones((2, 3), dtype=np.int64))


# --------------------------------------------------------------------- dropout
def test_dropout_statistics_and_inverted_scaling():
    p = 0.3
    layer = Dropout(p, rng=0)
    x = np.ones((200, 500), np.float32)
    y = layer(x)
    dropped = np.mean(y == 0)
    assert abs(dropped - p) < 4 * math.sqrt(p * (1 - p) / x.size)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01  # expectation preserved
    dy = np.full_like(x, 2.0)
    np.testing.assert_array_equal(layer.backward(dy), 2.0 * y)  # same mask as forward


def test_dropout_modes_and_seeds():
    x = randn(50, 20).astype(np.float32)
    a, b = Dropout(0.5, rng=11), Dropout(0.5, rng=11)
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(a(x), b(x[::-1].copy())[::-1])
    a.eval()
    assert a(x) is x and a.backward(x) is x
    np.testing.assert_array_equal(Dropout(0.0, rng=0)(x), x)
    np.testing.assert_array_equal(Dropout(1.0, rng=0)(x), 0.0)
    with pytest.raises(ValueError, match=r"Dropout: p \(drop probability\) must be in \[0, 1\], got 1.5"):
        Dropout(1.5)


def test_dropout2d_drops_whole_channels():
    layer = Dropout2d(0.5, rng=0)
    x = np.ones((8, 16, 3, 3), np.float32)
    y = layer(x)
    per_map = y.reshape(8, 16, 9)
    assert np.all((per_map == 0).all(axis=2) | (per_map == 2.0).all(axis=2))
    assert 0.3 < (per_map[:, :, 0] == 0).mean() < 0.7
    with pytest.raises(ValueError, match=r"Dropout2d\(p=0.5\): expected input \(N, C, H, W\), got shape \(8, 16\)"):
        layer(np.ones((8, 16), np.float32))


# ------------------------------------------------------------------ batchnorm
def test_batchnorm_train_normalises_and_tracks_running_stats():
    bn = BatchNorm2d(3)
    x = (randn(4, 3, 5, 5) * np.array([1.0, 2.0, 3.0])[:, None, None] + 2.0).astype(np.float32)
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)  # biased variance normalises
    mean = x.mean(axis=(0, 2, 3))
    unbiased = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * unbiased, rtol=1e-5)
    assert int(bn.num_batches_tracked) == 1
    bn(x)
    assert int(bn.num_batches_tracked) == 2
    np.testing.assert_allclose(bn.running_mean, 0.19 * mean, rtol=1e-5)


def test_batchnorm_eval_uses_running_stats():
    bn = BatchNorm1d(2)
    bn.running_mean[:] = [1.0, -1.0]
    bn.running_var[:] = [4.0, 0.25]
    bn.weight.data[:] = [2.0, 1.0]
    bn.bias.data[:] = [0.0, 3.0]
    bn.eval()
    x = np.array([[3.0, 0.0]], np.float32)  # batch of one is fine in eval
    expected = [(3 - 1) / math.sqrt(4 + 1e-5) * 2, (0 + 1) / math.sqrt(0.25 + 1e-5) + 3]
    np.testing.assert_allclose(bn(x)[0], expected, rtol=1e-6)
    assert int(bn.num_batches_tracked) == 0


def test_batchnorm_cumulative_average_and_no_tracking():
    x1, x2 = randn(8, 3, seed=1), randn(8, 3, seed=2) + 1
    bn = BatchNorm1d(3, momentum=None, dtype=np.float64)
    bn(x1)
    bn(x2)
    np.testing.assert_allclose(bn.running_mean, (x1.mean(0) + x2.mean(0)) / 2)
    plain = BatchNorm1d(3, track_running_stats=False)
    assert plain.running_mean is None and "running_mean" not in plain.state_dict()
    plain.eval()  # still normalises with the batch's own statistics
    np.testing.assert_allclose(plain(x2.astype(np.float32)).mean(0), 0.0, atol=1e-6)


def test_batchnorm_state_names_match_pytorch():
    bn = BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64
    assert [n for n, _ in BatchNorm1d(4, affine=False).named_parameters()] == []


def test_batchnorm_bad_input():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input \(N, 3, H, W\), got shape \(2, 4, 5, 5\)"):
        BatchNorm2d(3)(np.ones((2, 4, 5, 5), np.float32))
    expected = r"BatchNorm1d\(3\): expected input \(N, 3\) or \(N, 3, L\), got shape \(2, 3, 4, 4\)"
    with pytest.raises(ValueError, match=expected):
        BatchNorm1d(3)(np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm1d(3)(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(3, momentum=2.0)
