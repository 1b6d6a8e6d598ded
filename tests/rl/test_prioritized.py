"""Sum-tree against brute force; prioritized sampling, importance weights and priority updates."""
import numpy as np
import pytest

from rl.prioritized import PrioritizedReplay, SumTree
from rl.replay import ReplayBuffer


@pytest.mark.parametrize("capacity", [1, 5, 8, 13])
def test_sum_tree_matches_brute_force(capacity):
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity)
    p = np.zeros(capacity)
    for _ in range(30):  # random batch updates, duplicates included
        idx = rng.integers(0, capacity, size=rng.integers(1, 6))
        val = rng.random(idx.size) * (rng.random(idx.size) > 0.2)
        tree.update(idx, val)
        for i, v in zip(idx, val):
            p[i] = v  # the last write wins, as documented
        assert tree.total == pytest.approx(p.sum())
        np.testing.assert_allclose(tree[np.arange(capacity)], p)
        if p.sum() == 0:
            continue
        values = rng.random(50) * p.sum()
        cum = np.cumsum(p)
        expected = np.searchsorted(cum, values, side="right")
        np.testing.assert_array_equal(tree.find(values), expected)


def test_sum_tree_never_returns_zero_priority_leaves():
    tree = SumTree(6)
    tree.update([0, 1, 2, 3, 4, 5], [0.3, 0.0, 0.0, 0.4, 0.0, 0.0])
    found = tree.find(np.linspace(0, tree.total, 101))  # includes the total itself
    assert set(found.tolist()) <= {0, 3}


def test_sum_tree_rejects_bad_priorities():
    tree = SumTree(4)
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update([0], [-1.0])
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        tree.update([4], [1.0])


def make_per(capacity=16, steps=16, alpha=1.0, valid_fn=None):
    per = PrioritizedReplay(ReplayBuffer(capacity, (1,), rng=0), alpha=alpha, rng=0)
    for t in range(steps):
        obs = np.full((1, 1), t, np.float32)
        valid = None if valid_fn is None else [valid_fn(t)]
        per.add(obs, [0], [float(t)], obs, [False], [False], valid)
    return per


def test_sampling_follows_priorities():
    per = make_per(capacity=4, steps=4)
    per.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]) - 1e-6)
    counts = np.zeros(4)
    for _ in range(200):
        counts += np.bincount(per.sample(50).indices, minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_importance_weights():
    per = make_per(capacity=4, steps=4)
    per.update_priorities(np.arange(4), np.array([1.0, 1.0, 2.0, 4.0]) - 1e-6)
    batch = per.sample(64, beta=1.0)
    probs = np.array([1, 1, 2, 4])[batch.indices] / 8.0
    expected = (4 * probs) ** -1.0
    np.testing.assert_allclose(batch.weights, expected / expected.max(), rtol=1e-5)
    assert per.sample(8, beta=0.0).weights.tolist() == [1.0] * 8


def test_new_transitions_get_max_priority_and_invalid_ones_zero():
    per = make_per(capacity=8, steps=8, alpha=0.5, valid_fn=lambda t: t != 3)
    per.update_priorities([0], [9.0 - 1e-6])
    per.add(np.zeros((1, 1), np.float32), [0], [0.0], np.zeros((1, 1), np.float32), [False], [False])
    assert per.tree[0] == pytest.approx(3.0)  # slot 0 was overwritten with max priority 9 ** 0.5
    assert per.tree[3] == 0.0
    assert 3 not in per.sample(500).indices


def test_alpha_zero_is_uniform():
    per = make_per(capacity=4, steps=4, alpha=0.0)
    per.update_priorities(np.arange(4), [0.1, 10.0, 100.0, 1000.0])
    counts = np.bincount(np.concatenate([per.sample(100).indices for _ in range(40)]), minlength=4)
    assert counts.min() > 850


def test_state_round_trip():
    a = make_per()
    a.update_priorities(np.arange(4), [1.0, 2.0, 3.0, 4.0])
    b = make_per(steps=0)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.sample(16).indices, b.sample(16).indices)
    assert b.max_priority == a.max_priority


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha must be in"):
        PrioritizedReplay(ReplayBuffer(4, (1,)), alpha=2.0)
    per = make_per()
    with pytest.raises(ValueError, match="beta must be in"):
        per.sample(4, beta=-0.1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        per.update_priorities([0], [np.nan])
    with pytest.raises(ValueError, match="no valid transition"):
        make_per(steps=0).sample(4)
