"""The fused MLP path and batched training bursts give the generic per-step path's numbers."""
import numpy as np
import pytest

import rl.agent as agent_module
from core.layers import Linear, ReLU
from core.module import Sequential
from core.optim import clip_grad_norm
from rl.dqn import DQNAgent, DQNConfig
from rl.fused_mlp import PREDICT_CHUNK, FusedMLP, mlp_linears
from rl.networks import QNetwork, build_q_network, mlp_q_network
from rl.replay import ReplayBatch, ReplayBuffer


def tol(dtype):
    return dict(rtol=1e-6, atol=1e-7) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- FusedMLP
def test_only_plain_mlps_take_the_fused_path():
    assert len(mlp_linears(mlp_q_network(4, 2, hidden=[8, 8], rng=0))) == 3
    assert len(mlp_linears(mlp_q_network(4, 2, hidden=[8], rng=0))) == 2
    dueling = mlp_q_network(4, 2, hidden=[8, 8], dueling=True, rng=0)
    assert mlp_linears(dueling) is None
    assert mlp_linears(build_q_network((4, 36, 36), 2, rng=0)) is None
    frozen = mlp_q_network(4, 2, hidden=[8], rng=0)
    frozen.body[0].weight.trainable = False
    assert mlp_linears(frozen) is None
    scaled = QNetwork(Sequential(Linear(4, 8, rng=0), ReLU()), Sequential(Linear(8, 2, rng=0)), 2, input_scale=0.5)
    assert mlp_linears(scaled) is None
    no_bias = QNetwork(Sequential(Linear(4, 8, bias=False, rng=0), ReLU()), Sequential(Linear(8, 2, rng=0)), 2)
    assert mlp_linears(no_bias) is None
    with pytest.raises(ValueError, match="plain"):
        FusedMLP(dueling)


@pytest.mark.parametrize("hidden, dtype", [([16, 12], np.float32), ([8], np.float64), ([10, 6, 5], np.float32)])
def test_forward_backward_and_predict_match_the_modules(hidden, dtype):
    net = mlp_q_network(5, 3, hidden=hidden, rng=0, dtype=dtype)
    rng = np.random.default_rng(1)
    fused = FusedMLP(net)
    for _ in range(2):  # the second round reuses the buffers: gradients are overwritten, not accumulated
        x = rng.normal(size=(7, 5)).astype(dtype)
        dq = rng.normal(size=(7, 3)).astype(dtype)
        for p in net.parameters():
            p.grad = None
        q_ref = net.forward(x).copy()
        net.backward(dq)
        grads_ref = [p.grad.copy() for p in net.parameters()]
        q = fused.forward(x)
        np.testing.assert_allclose(q, q_ref, **tol(dtype))
        fused.backward(dq)
        for (name, p), g in zip(net.named_parameters(), grads_ref):
            assert p.grad.shape == g.shape and p.grad.dtype == np.dtype(dtype)
            np.testing.assert_allclose(p.grad, g, **tol(dtype), err_msg=name)
        np.testing.assert_allclose(fused.predict(x), q_ref, **tol(dtype))
    assert fused.grad.size == sum(p.data.size for p in net.parameters())


@pytest.mark.parametrize("dead", [slice(0, 15), slice(None)])
def test_backward_skips_units_dead_for_the_batch_and_still_matches(dead):
    """Units whose ReLU output is zero for the whole batch take the sparse path (SPARSE_FRACTION)."""
    net = mlp_q_network(5, 3, hidden=[16, 20, 12], rng=0, dtype=np.float64)
    net.body[2].bias.data[dead] = -100.0  # second hidden layer: these units never fire
    net.body[0].bias.data[:4] = -100.0    # and a few of the first
    fused = FusedMLP(net)
    x = np.random.default_rng(1).normal(size=(9, 5))
    dq = np.random.default_rng(2).normal(size=(9, 3))
    for p in net.parameters():
        p.grad = None
    net.forward(x)
    net.backward(dq)
    grads_ref = [p.grad.copy() for p in net.parameters()]
    fused.forward(x)
    fused.backward(dq)
    for (name, p), g in zip(net.named_parameters(), grads_ref):
        np.testing.assert_allclose(p.grad, g, rtol=1e-12, atol=1e-12, err_msg=name)
    assert not fused.grad_views[2][dead].any()  # dead units' weight rows: exactly zero
    if dead == slice(None):
        assert not any(g.any() for g in fused.grad_views[:4])  # nothing flows through a fully dead layer


def test_predict_runs_in_chunks_and_leaves_the_training_cache():
    net = mlp_q_network(4, 2, hidden=[16, 16], rng=0)
    fused = FusedMLP(net)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    q = fused.forward(x).copy()
    big = rng.normal(size=(2 * PREDICT_CHUNK + 3, 4))  # float64 input is cast, as QNetwork.forward does
    out = fused.predict(big)
    assert out.shape == (len(big), 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, net.predict(big), rtol=1e-5, atol=1e-6)
    dq = np.ones((8, 2), np.float32)
    fused.backward(dq)  # still the gradient of the forward above, not of the predicted rows
    for p in net.parameters():
        p.grad = None
    net.forward(x)
    net.backward(dq)
    np.testing.assert_allclose(fused.grad_views[0], net.body[0].weight.grad, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(q, net.forward(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_norm", [1e-3, 1e6])
def test_clip_grad_norm_matches_core(max_norm):
    net = mlp_q_network(4, 2, hidden=[8, 8], rng=0)
    fused = FusedMLP(net)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    fused.forward(x)
    fused.backward(np.ones((5, 2), np.float32))
    expected = [p.grad.copy() for p in net.parameters()]
    norm_ref = clip_grad_norm([type(p)(g) for p, g in zip(net.parameters(), expected)], max_norm)
    for p, g in zip(net.parameters(), expected):
        p.grad = g
    norm_core = clip_grad_norm(net.parameters(), max_norm)
    clipped = [p.grad.copy() for p in net.parameters()]
    fused.forward(x)
    fused.backward(np.ones((5, 2), np.float32))
    assert fused.clip_grad_norm(max_norm) == pytest.approx(norm_core) and norm_ref == 0.0
    for p, g in zip(net.parameters(), clipped):
        np.testing.assert_allclose(p.grad, g, rtol=1e-6, atol=1e-9)
    fused.grad[0] = np.inf  # a non-finite norm leaves the gradients alone (the NaN guard sees it)
    before = fused.grad.copy()
    assert not np.isfinite(fused.clip_grad_norm(max_norm))
    np.testing.assert_array_equal(fused.grad, before)


# ----------------------------------------------------------------------------- agent: fused vs generic
def agent_pair(**kw):
    config = DQNConfig(hidden=[32, 32], learning_rate=1e-2, **kw)
    fused = DQNAgent(config, (4,), 3, rng=0)
    generic = DQNAgent(config, (4,), 3, rng=0)
    generic._fused = generic._fused_target = None
    return fused, generic


def random_batch(rng, size=16, weighted=False):
    return ReplayBatch(obs=rng.normal(size=(size, 4)).astype(np.float32), actions=rng.integers(0, 3, size),
                       rewards=rng.normal(size=size).astype(np.float32),
                       next_obs=rng.normal(size=(size, 4)).astype(np.float32),
                       terminated=(rng.random(size) < 0.2).astype(np.float32),
                       discounts=np.full(size, 0.99, np.float32), indices=np.arange(size),
                       weights=rng.uniform(0.1, 1.0, size).astype(np.float32) if weighted else None)


@pytest.mark.parametrize("kw", [{}, dict(loss="mse", max_grad_norm=None), dict(max_grad_norm=0.01, double=True),
                                dict(optimizer="rmsprop")])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_train_steps_match_the_generic_path(kw, weighted):
    fused, generic = agent_pair(**kw)
    assert fused._fused is not None and generic._fused is None
    rng = np.random.default_rng(0)
    for _ in range(6):
        batch = random_batch(rng, weighted=weighted)
        loss_f, td_f = fused.train_step(batch)
        loss_g, td_g = generic.train_step(batch)
        assert loss_f == pytest.approx(loss_g, rel=1e-5)
        np.testing.assert_allclose(td_f, td_g, rtol=1e-5, atol=1e-6)
    assert fused.num_updates == generic.num_updates == 6
    for (name, a), b in zip(fused.q.named_parameters(), generic.q.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6, err_msg=name)
    state_f, state_g = fused.optimizer.state_dict()["state"], generic.optimizer.state_dict()["state"]
    for i in state_g:
        for key, value in state_g[i].items():
            np.testing.assert_allclose(state_f[i][key], value, rtol=1e-5, atol=1e-7)


def test_a_frozen_parameter_sends_training_back_to_the_generic_path():
    agent, _ = agent_pair()
    agent.q.body[0].weight.trainable = False
    frozen = agent.q.body[0].weight.data.copy()
    head = agent.q.head[0].weight.data.copy()
    agent.train_step(random_batch(np.random.default_rng(0)))
    np.testing.assert_array_equal(agent.q.body[0].weight.data, frozen)
    assert agent.q.body[0].weight.grad is None and not np.array_equal(agent.q.head[0].weight.data, head)


def test_fused_inference_follows_load_state_dict():
    agent, _ = agent_pair()
    other = DQNAgent(agent.config, (4,), 3, rng=5)
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    agent.load_state_dict(other.state_dict())
    np.testing.assert_allclose(agent._predict(x), other.q.predict(x), rtol=1e-6)
    np.testing.assert_allclose(agent._predict_target(x), other.q_target.predict(x), rtol=1e-6)
    np.testing.assert_array_equal(agent.greedy_actions(x), other.q.predict(x).argmax(axis=1))


def test_single_env_actions_draw_the_documented_stream():
    """N = 1 takes scalar draws; they must be the numbers ``random(1)`` and ``integers(size=1)`` give."""
    agent = DQNAgent(DQNConfig(hidden=[8]), (4,), 3, rng=7)
    reference = np.random.default_rng()
    reference.bit_generator.state = agent.rng.bit_generator.state
    obs = np.random.default_rng(1).normal(size=(1, 4)).astype(np.float32)
    greedy = agent.q.predict(obs).argmax(axis=1)
    for epsilon in [0.0, 0.3, 0.7, 1.0] * 25:
        action = agent.act(obs, epsilon)
        explore, random_action = reference.random(1) < epsilon, reference.integers(0, 3, size=1)
        assert action.shape == (1,) and action.dtype == np.int64
        np.testing.assert_array_equal(action, random_action if explore[0] else greedy)


# ----------------------------------------------------------------------------- bursts
def filled_replay(seed, *, n_step=1, num_envs=1, invalid=False, steps=300):
    buf = ReplayBuffer(2000, (4,), num_envs=num_envs, n_step=n_step, gamma=0.99, rng=seed)
    rng = np.random.default_rng(123)
    for _ in range(steps):
        ends = rng.random(num_envs) < 0.05
        valid = rng.random(num_envs) > 0.2 if invalid else None
        buf.add(rng.normal(size=(num_envs, 4)).astype(np.float32), rng.integers(0, 3, num_envs),
                rng.normal(size=num_envs), rng.normal(size=(num_envs, 4)).astype(np.float32),
                ends & (rng.random(num_envs) < 0.5), ends, valid)
    return buf


def record_gathers(replay):
    seen = []
    gather = replay.gather

    def recording(flat):
        seen.append(np.array(flat))
        return gather(flat)

    replay.gather = recording
    return seen


@pytest.mark.parametrize("kw", [{}, dict(double=True), dict(n_step=3), dict(dueling=True),
                                dict(double=True, dueling=True, loss="mse")])
@pytest.mark.parametrize("steps_per_draw", [None, 3])
def test_a_burst_equals_per_step_training(kw, steps_per_draw, monkeypatch):
    if steps_per_draw is not None:  # draw and gather 3 steps' batches at a time
        monkeypatch.setattr(agent_module, "BURST_BYTES", steps_per_draw * 2 * 16 * 4 * 4)
    config = DQNConfig(hidden=[32, 32], learning_rate=1e-2, batch_size=16, **kw)
    burst, stepwise = DQNAgent(config, (4,), 3, rng=0), DQNAgent(config, (4,), 3, rng=0)
    replay_b, replay_s = filled_replay(5, n_step=config.n_step), filled_replay(5, n_step=config.n_step)
    drawn_b, drawn_s = record_gathers(replay_b), record_gathers(replay_s)
    burst.train_uniform(replay_b, 16, 20)
    for _ in range(20):
        stepwise.train_step(replay_s.sample(16))
    assert burst.num_updates == stepwise.num_updates == 20
    # the same transitions, in the same order, and the sampling RNG ends in the same state
    np.testing.assert_array_equal(np.concatenate(drawn_b), np.concatenate(drawn_s))
    assert replay_b.rng.bit_generator.state == replay_s.rng.bit_generator.state
    for (name, a), b in zip(burst.q.named_parameters(), stepwise.q.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5, err_msg=name)


def test_bursts_are_chunked_by_memory_and_stay_deterministic_with_invalid_slots(monkeypatch):
    config = DQNConfig(hidden=[16], learning_rate=1e-2, batch_size=8, double=True, num_envs=2)

    def train(burst_bytes):
        monkeypatch.setattr(agent_module, "BURST_BYTES", burst_bytes)
        agent = DQNAgent(config, (4,), 3, rng=0)
        replay = filled_replay(3, num_envs=2, invalid=True)
        drawn = record_gathers(replay)
        agent.train_uniform(replay, 8, 10)
        assert all(replay.sampleable(idx).all() for idx in drawn)  # reset steps are never trained on
        return agent, drawn

    whole, drawn_whole = train(agent_module.BURST_BYTES)
    again, _ = train(agent_module.BURST_BYTES)
    chunked, drawn_chunked = train(3 * 2 * 8 * 4 * 4)  # 3 steps' observations per draw
    assert len(drawn_whole) == 1 and [len(d) for d in drawn_chunked] == [24, 24, 24, 8]
    for a, b, c in zip(whole.q.parameters(), again.q.parameters(), chunked.q.parameters()):
        np.testing.assert_array_equal(a.data, b.data)  # deterministic per seed
        assert a.data.shape == c.data.shape and np.isfinite(c.data).all()
    assert chunked.num_updates == whole.num_updates == 10


@pytest.mark.parametrize("extra", [dict(prioritized=True, n_step=3, double=True), dict(n_step=2, tau=0.1)])
def test_runs_train_the_same_with_or_without_the_fused_path(extra):
    """Whole runs (acting, replay, PER priorities or bursts) agree with the module path."""
    from rl.dqn import DQN
    from tests.rl.corridor import ENV_ID

    def train(fused):
        run = DQN(DQNConfig(env_id=ENV_ID, total_steps=600, hidden=[16, 16], batch_size=16, buffer_size=1000,
                            learning_starts=100, train_freq=20, gradient_steps=4, target_update_interval=30,
                            eval_every=0, seed=2, **extra))
        if not fused:
            run.agent._fused = run.agent._fused_target = None
        run.learn()
        run.close()
        return run

    fused, generic = train(True), train(False)
    assert fused.agent.num_updates == generic.agent.num_updates > 0
    assert fused.num_episodes == generic.num_episodes
    for (name, a), b in zip(fused.agent.q.named_parameters(), generic.agent.q.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5, err_msg=name)
    if extra.get("prioritized"):
        n = len(fused.replay)
        np.testing.assert_allclose(fused.replay.tree[np.arange(n)], generic.replay.tree[np.arange(n)], rtol=1e-4, atol=1e-5)


def test_agent_keeps_mlp_weights_in_one_buffer_across_a_state_reload():
    """Adam's single-pass update needs the online weights back to back (core.optim.flat)."""
    from core.optim.flat import joined_view

    agent, _ = agent_pair()
    assert joined_view([p.data for p in agent.q.parameters()]) is not None
    rng = np.random.default_rng(0)
    agent.train_step(random_batch(rng))
    other, _ = agent_pair()
    other.load_state_dict(agent.state_dict())
    assert joined_view([p.data for p in other.q.parameters()]) is not None
    for a, b in zip(other.q.parameters(), agent.q.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    batch = random_batch(rng)
    np.testing.assert_array_equal(other.train_step(batch)[1], agent.train_step(batch)[1])


@pytest.mark.parametrize("size", [50, 4000, 10**6])  # lookup tables, and np.unique for sparse draws
def test_distinct_slots_of_a_burst(size):
    from rl.agent import _distinct

    indices = np.random.default_rng(size).integers(0, size, 3000)
    first, inverse = _distinct(indices, size)
    assert len(first) == len(np.unique(indices))
    np.testing.assert_array_equal(np.sort(indices[first]), np.unique(indices))
    np.testing.assert_array_equal(indices[first][inverse], indices)
