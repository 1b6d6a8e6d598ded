"""Q-networks: shapes, gradients through the shared harness, dueling identity, cache-free predict."""
import numpy as np
import pytest

from rl.networks import DuelingHead, build_q_network, mlp_q_network
from tests.harness import assert_module_gradients


def test_dueling_head_gradients():
    head = DuelingHead(5, 3, hidden=4, rng=0)
    assert_module_gradients(head, np.random.default_rng(0).normal(size=(6, 5)))
    assert_module_gradients(DuelingHead(5, 3, rng=1), np.random.default_rng(1).normal(size=(4, 5)))


@pytest.mark.parametrize("dueling", [False, True])
def test_mlp_gradients(dueling):
    net = mlp_q_network(3, 4, hidden=[8, 6], dueling=dueling, rng=0)
    net.body[0].requires_input_grad = True  # expose d(loss)/d(obs) for the harness
    x = np.random.default_rng(2).normal(size=(5, 3))
    report = assert_module_gradients(net, x)
    assert any("weight" in name for name in report.errors)


def test_dueling_mean_advantage_is_removed():
    head = DuelingHead(4, 3, rng=0)
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    q = head(x)
    v = head.value(x)
    np.testing.assert_allclose(q.mean(axis=1, keepdims=True), v, rtol=1e-5, atol=1e-6)


def test_shapes_names_and_predict():
    net = build_q_network((4,), 2, hidden=[16, 16], rng=0)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "head.0.weight", "head.0.bias"]
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    q = net(x)
    assert q.shape == (3, 2) and q.dtype == np.float32
    np.testing.assert_allclose(net.predict(x), q, rtol=1e-6)
    dueling = build_q_network((4,), 2, hidden=[16, 16], dueling=True, rng=0)
    np.testing.assert_allclose(dueling.predict(x), dueling(x), rtol=1e-5)
    assert net.backward(np.ones_like(q)) is None  # the first layer skips d(loss)/d(obs)


def test_same_seed_same_weights():
    a, b = build_q_network((4,), 2, rng=3), build_q_network((4,), 2, rng=3)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden must be a non-empty list"):
        mlp_q_network(4, 2, hidden=[])
    with pytest.raises(ValueError, match="needs 1-D observations"):
        build_q_network((2, 3), 2, network="mlp")
    with pytest.raises(ValueError, match="network must be"):
        build_q_network((4,), 2, network="transformer")
    with pytest.raises(ValueError, match="too small for the Nature CNN"):
        build_q_network((4, 20, 20), 2)


@pytest.mark.parametrize("dueling", [False, True])
def test_nature_cnn_on_frame_stacks(dueling):
    net = build_q_network((4, 84, 84), 6, dueling=dueling, rng=0)
    names = [n for n, _ in net.named_parameters()]
    assert names[:2] == ["body.0.weight", "body.0.bias"] and net.body[0].weight.shape == (32, 4, 8, 8)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 4, 84, 84), dtype=np.uint8)
    q = net(frames)
    assert q.shape == (2, 6) and q.dtype == np.float32
    np.testing.assert_allclose(net.predict(frames), q, rtol=1e-4, atol=1e-5)
    net.backward(np.ones_like(q))
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
