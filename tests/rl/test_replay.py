"""Ring buffer: wrap-around, uniform sampling, n-step returns, terminated vs truncated, reset steps."""
import numpy as np
import pytest

from rl.replay import ReplayBuffer, nstep_lookahead


def fill(buf, steps, *, done_at=(), trunc_at=(), valid_fn=None):
    """Add ``steps`` single-env transitions whose obs/reward encode the step index."""
    for t in range(steps):
        obs = np.full((1, 2), t, dtype=np.float32)
        nxt = np.full((1, 2), t + 0.5, dtype=np.float32)
        valid = None if valid_fn is None else [valid_fn(t)]
        buf.add(obs, [t % 3], [float(t)], nxt, [t in done_at], [t in trunc_at], valid)


def test_wraps_around_and_keeps_the_newest():
    buf = ReplayBuffer(5, (2,), rng=0)
    fill(buf, 7)
    assert len(buf) == 5 and buf.full and buf.pos == 2
    assert sorted(buf.obs[:, 0, 0]) == [2, 3, 4, 5, 6]
    batch = buf.sample(200)
    assert set(batch.obs[:, 0]) == {2.0, 3.0, 4.0, 5.0, 6.0}
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.obs[:, 0] + 0.5)
    np.testing.assert_array_equal(batch.rewards, batch.obs[:, 0])
    np.testing.assert_array_equal(batch.actions, batch.obs[:, 0].astype(int) % 3)
    assert batch.obs.dtype == np.float32 and batch.actions.dtype == np.int64
    np.testing.assert_allclose(batch.discounts, 0.99)


def test_sampling_is_uniform_and_seeded():
    a, b = ReplayBuffer(100, (2,), rng=7), ReplayBuffer(100, (2,), rng=7)
    fill(a, 100)
    fill(b, 100)
    np.testing.assert_array_equal(a.sample(32).indices, b.sample(32).indices)
    counts = np.bincount(a.sample_indices(100_000), minlength=100)
    assert counts.min() > 800 and counts.max() < 1200  # expected 1000 each


def test_observations_keep_their_dtype():
    buf = ReplayBuffer(10, (3, 4), np.uint8, rng=0)
    frame = np.full((1, 3, 4), 255, np.uint8)
    buf.add(frame, [0], [0.0], frame, [False], [False])
    assert buf.obs.dtype == np.uint8 and buf.sample(2).obs.dtype == np.uint8
    assert buf.obs.nbytes == 10 * 12


def test_terminated_stops_bootstrap_but_truncated_does_not():
    buf = ReplayBuffer(10, (2,), rng=0)
    fill(buf, 3, done_at={1}, trunc_at={2})
    batch = buf.gather(np.arange(3))
    np.testing.assert_array_equal(batch.terminated, [0.0, 1.0, 0.0])


def test_reset_steps_are_never_sampled():
    buf = ReplayBuffer(20, (2,), rng=0)
    fill(buf, 20, valid_fn=lambda t: t % 4 != 0)
    idx = buf.sample_indices(5000)
    assert not np.any(idx % 4 == 0)
    fill(buf, 20)  # overwritten by valid steps: the invalid count drops back to zero
    assert buf._num_invalid == 0


def test_nstep_returns_stop_at_episode_ends():
    gamma = 0.5
    buf = ReplayBuffer(20, (2,), n_step=3, gamma=gamma, rng=0)
    # rewards equal the step index; episode ends (terminated) at step 4, truncated at step 8
    fill(buf, 10, done_at={4}, trunc_at={8})
    b = buf.gather(np.arange(10))
    # step 0: r0 + g r1 + g^2 r2, bootstrap from next_obs of step 2
    assert b.rewards[0] == pytest.approx(0 + 0.5 * 1 + 0.25 * 2)
    assert b.next_obs[0, 0] == 2.5 and b.discounts[0] == pytest.approx(gamma ** 3) and b.terminated[0] == 0
    # step 3: r3 + g r4, terminal at 4 -> no bootstrap
    assert b.rewards[3] == pytest.approx(3 + 0.5 * 4)
    assert b.terminated[3] == 1.0 and b.discounts[3] == pytest.approx(gamma ** 2)
    # step 5 starts a new episode: r5 + g r6 + g^2 r7
    assert b.rewards[5] == pytest.approx(5 + 0.5 * 6 + 0.25 * 7) and b.next_obs[5, 0] == 7.5
    # step 7: truncation at 8 ends the sum but keeps the bootstrap from the final obs 8.5
    assert b.rewards[7] == pytest.approx(7 + 0.5 * 8)
    assert b.terminated[7] == 0.0 and b.next_obs[7, 0] == 8.5 and b.discounts[7] == pytest.approx(gamma ** 2)
    # step 9 is the newest: only 1 step is available
    assert b.rewards[9] == 9 and b.discounts[9] == pytest.approx(gamma)


def test_nstep_never_reads_past_the_write_pointer_after_wrap():
    buf = ReplayBuffer(4, (2,), n_step=3, gamma=1.0, rng=0)
    fill(buf, 6)  # rows now hold steps [4, 5, 2, 3]; pos = 2
    b = buf.gather(np.array([1]))  # step 5 (newest): must not continue into step 2
    assert b.rewards[0] == 5 and b.next_obs[0, 0] == 5.5


def test_nstep_lookahead_brute_force():
    rng = np.random.default_rng(3)
    rows, envs, n, gamma = 12, 3, 4, 0.9
    rewards = rng.normal(size=(rows, envs)).astype(np.float32)
    dones = rng.random((rows, envs)) < 0.2
    row = rng.integers(0, rows, 50)
    col = rng.integers(0, envs, 50)
    avail = rng.integers(1, 6, 50)
    ret, last, k = nstep_lookahead(rewards, dones, row, col, avail, n, gamma)
    for i in range(50):
        total, j = 0.0, 0
        while True:
            r = (row[i] + j) % rows
            total += gamma ** j * rewards[r, col[i]]
            j += 1
            if dones[r, col[i]] or j == n or j == avail[i]:
                break
        assert k[i] == j and last[i] == (row[i] + j - 1) % rows
        assert ret[i] == pytest.approx(total, rel=1e-5, abs=1e-5)


def test_vector_env_columns_are_separate_streams():
    buf = ReplayBuffer(12, (1,), num_envs=2, n_step=2, gamma=1.0, rng=0)
    for t in range(4):
        obs = np.array([[t], [100 + t]], np.float32)
        buf.add(obs, [0, 1], [t, 100 + t], obs + 0.5, [False, False], [False, t == 1])
    b = buf.gather(np.array([0, 1, 3]))  # (row0, env0), (row0, env1), (row1, env1)
    np.testing.assert_allclose(b.rewards, [0 + 1, 100 + 101, 101])
    np.testing.assert_allclose(b.next_obs[:, 0], [1.5, 101.5, 101.5])


def test_state_round_trip_continues_identically():
    a = ReplayBuffer(8, (2,), n_step=2, rng=1)
    fill(a, 11)
    b = ReplayBuffer(8, (2,), n_step=2, rng=99)
    b.load_state_dict(a.state_dict())
    for x, y in zip(a.sample(16), b.sample(16)):
        np.testing.assert_array_equal(x, y)


def test_end_episodes_cuts_nstep_sums():
    buf = ReplayBuffer(10, (2,), n_step=3, gamma=1.0, rng=0)
    fill(buf, 2)
    buf.end_episodes()
    fill(buf, 1)
    assert buf.gather(np.array([0])).rewards[0] == 0 + 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacity=0, obs_shape=(2,)), "capacity must be a positive int"),
    (dict(capacity=10, obs_shape=(2,), n_step=0), "n_step must be a positive int"),
    (dict(capacity=10, obs_shape=(2,), gamma=1.5), "gamma must be in"),
    (dict(capacity=1, obs_shape=(2,), num_envs=2), "smaller than num_envs"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(**kwargs)


def test_bad_shapes_and_empty_sampling():
    buf = ReplayBuffer(10, (2,), rng=0)
    with pytest.raises(ValueError, match="holds no valid transition"):
        buf.sample(4)
    with pytest.raises(ValueError, match=r"obs has shape \(1, 3\), expected \(1, 2\)"):
        buf.add(np.zeros((1, 3)), [0], [0.0], np.zeros((1, 3)), [False], [False])
