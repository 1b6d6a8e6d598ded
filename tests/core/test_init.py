"""Initialisers: fans, statistics, determinism; and the book's activation-distribution experiment (ch. 6.2)."""
import math

import numpy as np
import pytest

from core import init
from core.layers import Linear, ReLU
from core.module import Sequential


@pytest.mark.parametrize("shape, fans", [
    ((7,), (7, 7)), ((30, 20), (20, 30)), ((16, 3, 5, 5), (75, 400)), ((4, 2, 3), (6, 12)),
])
def test_fan_in_fan_out(shape, fans):
    assert init.fan_in_fan_out(shape) == fans


SHAPE = (300, 200, 3, 3)  # fan_in 1800, fan_out 2700: 540k samples, std known to ~0.2%
FAN_IN, FAN_OUT = 1800, 2700


@pytest.mark.parametrize("name, std", [
    ("he_normal", math.sqrt(2 / FAN_IN)),
    ("he_uniform", math.sqrt(2 / FAN_IN)),
    ("lecun_normal", math.sqrt(1 / FAN_IN)),
    ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("normal", 0.01),
])
def test_initialiser_statistics(name, std):
    w = init.get_initializer(name)(SHAPE, rng=np.random.default_rng(0), dtype=np.float64)
    assert w.shape == SHAPE and w.dtype == np.float64
    assert abs(w.mean()) < 5 * std / math.sqrt(w.size)
    assert w.std() == pytest.approx(std, rel=0.01)
    if name.endswith("uniform"):
        bound = std * math.sqrt(3)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_explicit_arguments():
    w = init.he_normal((50, 40), rng=0, fan_in=8)
    assert w.dtype == np.float32 and w.std() == pytest.approx(0.5, rel=0.05)
    assert init.xavier_uniform((200, 300), rng=0, gain=2.0).std() == pytest.approx(2 * math.sqrt(2 / 500), rel=0.02)
    assert init.normal((400, 400), std=0.5, rng=0, mean=3.0).mean() == pytest.approx(3.0, abs=0.005)
    u = init.uniform((1000,), -2.0, 1.0, rng=0)
    assert u.min() >= -2.0 and u.max() < 1.0
    np.testing.assert_array_equal(init.zeros((2, 3)), 0.0)
    np.testing.assert_array_equal(init.ones(4, dtype=np.float64), 1.0)


def test_seeded_and_generator_determinism():
    np.testing.assert_array_equal(init.he_normal((5, 5), rng=1), init.he_normal((5, 5), rng=1))
    g = np.random.default_rng(2)
    first, second = init.he_normal((5, 5), rng=g), init.he_normal((5, 5), rng=g)
    assert not np.array_equal(first, second)  # the Generator advances


def test_get_initializer_forms_and_errors():
    assert init.get_initializer("kaiming_normal") is init.he_normal
    assert init.get_initializer("Xavier_Normal") is init.xavier_normal
    custom = init.get_initializer(lambda shape, rng=None, dtype=np.float32: np.full(shape, 0.5, dtype))
    np.testing.assert_array_equal(custom((2,), rng=None, dtype=np.float32), 0.5)
    assert init.get_initializer(0.2)((1000, 1000), rng=0).std() == pytest.approx(0.2, rel=0.01)
    with pytest.raises(ValueError, match="unknown init 'bogus'"):
        init.get_initializer("bogus")
    with pytest.raises(ValueError, match="must be > 0"):
        init.get_initializer(-1.0)
    with pytest.raises(TypeError, match="init must be"):
        init.get_initializer(None)
    with pytest.raises(ValueError, match="scalar shape"):
        init.fan_in_fan_out(())
    with pytest.raises(TypeError, match="floating dtype"):
        init.he_normal((2, 2), rng=0, dtype=np.int64)
    with pytest.raises(ValueError, match="negative"):
        init.zeros((2, -1))


def activation_stds(weight_init, layers=5, units=100, samples=1000, seed=0):
    """The book's Fig. 6-10/6-14 experiment: std of each ReLU layer's output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, units))
    stds = []
    for _ in range(layers):
        net = Sequential(Linear(units, units, init=weight_init, rng=rng, dtype=np.float64), ReLU())
        x = net(x)
        stds.append(float(x.std()))
    return stds


def test_book_experiment_activation_std_collapses_with_small_init_but_not_with_he():
    small = activation_stds(0.01)
    he = activation_stds("he_normal")
    print("\nper-layer activation std, std=0.01:", " ".join(f"{s:.3g}" for s in small))
    print("per-layer activation std, He     :", " ".join(f"{s:.3g}" for s in he))
    # std 0.01 shrinks each layer by about 0.01 * sqrt(100 / 2) ~ 0.07: vanishing activations
    assert all(b < 0.15 * a for a, b in zip(small, small[1:]))
    assert small[-1] < 1e-4
    # He keeps the second moment constant through ReLU layers: healthy at every depth
    assert all(0.3 < s < 3.0 for s in he)
    assert he[-1] / he[0] > 0.3
