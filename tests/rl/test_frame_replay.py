"""Frame-stack replay: rebuilt stacks equal what FrameStackObservation produced, with NEXT_STEP resets."""
import numpy as np
import pytest

from rl.frame_replay import FrameReplayBuffer

STACK, H, W = 4, 3, 2


def simulate(num_envs, steps, seed=0):
    """A NEXT_STEP vector env of frame-stacked observations ("reset" padding) and random episode ends.

    Yields ``(obs, actions, rewards, next_obs, terminated, truncated, valid)`` per step; actions are
    unique transition ids so a sampled slot can be matched to the transition that produced it.
    """
    rng = np.random.default_rng(seed)
    counter = [1]

    def new_frame():
        counter[0] += 1
        return np.full((H, W), counter[0] % 251, np.uint8)

    stacks = [np.stack([new_frame()] * STACK) for _ in range(num_envs)]
    ended = np.zeros(num_envs, bool)
    tid = 0
    for _ in range(steps):
        obs = np.stack(stacks)
        actions = np.arange(tid, tid + num_envs)
        tid += num_envs
        rewards = rng.normal(size=num_envs).astype(np.float32)
        term = np.zeros(num_envs, bool)
        trunc = np.zeros(num_envs, bool)
        valid = ~ended
        for e in range(num_envs):
            if ended[e]:  # reset step: the action is ignored and a new episode begins
                stacks[e] = np.stack([new_frame()] * STACK)
                rewards[e] = 0.0
            else:
                stacks[e] = np.concatenate([stacks[e][1:], new_frame()[None]])
                u = rng.random()
                term[e], trunc[e] = u < 0.08, 0.08 <= u < 0.12
        ended = (term | trunc) & valid
        yield obs, actions, rewards, np.stack(stacks), term, trunc, valid


def record(buf, num_envs, steps, seed=0):
    ref = {}
    per_env = [[] for _ in range(num_envs)]
    for obs, a, r, nxt, te, tr, valid in simulate(num_envs, steps, seed):
        buf.add(obs, a, r, nxt, te, tr, valid)
        for e in np.flatnonzero(valid):
            per_env[e].append(int(a[e]))
            ref[int(a[e])] = (e, len(per_env[e]) - 1, obs[e], r[e], nxt[e], te[e], te[e] or tr[e])
    return ref, per_env


@pytest.mark.parametrize("num_envs, capacity, n_step", [(1, 400, 1), (2, 60, 1), (2, 60, 3), (3, 45, 2)])
def test_stacks_match_the_env_observations(num_envs, capacity, n_step):
    gamma = 0.9
    buf = FrameReplayBuffer(capacity, (STACK, H, W), num_envs=num_envs, n_step=n_step, gamma=gamma, rng=0)
    ref, per_env = record(buf, num_envs, 150)
    idx = np.flatnonzero(buf.sampleable(np.arange(len(buf))))
    assert len(idx) > 0.6 * len(buf)
    batch = buf.gather(idx)
    newest = {}
    for e, ids in enumerate(per_env):  # ids still stored, to know how far n-step may look ahead
        newest[e] = ids[-1]
    for i in range(len(idx)):
        e, k, obs, _, _, _, _ = ref[int(batch.actions[i])]
        np.testing.assert_array_equal(batch.obs[i], obs)
        ids, total, j = per_env[e], 0.0, 0
        while True:
            _, _, _, r, nxt, te, done = ref[ids[k + j]]
            total += gamma ** j * r
            j += 1
            if done or j == n_step or ids[k + j - 1] == newest[e]:
                break
        np.testing.assert_array_equal(batch.next_obs[i], nxt)
        assert batch.rewards[i] == pytest.approx(total, abs=1e-5)
        assert batch.terminated[i] == float(te)
        assert batch.discounts[i] == pytest.approx(gamma ** j)


def test_each_frame_is_stored_once():
    buf = FrameReplayBuffer(1000, (4, 84, 84))
    assert buf.frames.nbytes == 1000 * 84 * 84
    assert buf.nbytes < 1000 * 84 * 84 * 1.01


def test_sampling_only_returns_complete_stacks():
    buf = FrameReplayBuffer(30, (STACK, H, W), rng=0)
    ref, _ = record(buf, 1, 200, seed=4)
    for _ in range(20):
        b = buf.sample(32)
        for i in range(32):
            np.testing.assert_array_equal(b.obs[i], ref[int(b.actions[i])][2])


def test_episode_start_without_reset_step_is_an_error():
    buf = FrameReplayBuffer(20, (STACK, H, W), num_envs=2)
    obs = np.zeros((2, STACK, H, W), np.uint8)
    buf.add(obs, [0, 0], [0, 0], obs, [True, False], [False, False])
    with pytest.raises(ValueError, match="NEXT_STEP"):  # env 0 ended but its next step is not a reset step
        buf.add(obs, [0, 0], [0, 0], obs, [False, False], [False, False])


def test_state_round_trip_and_resume_marks_episode_ends():
    a = FrameReplayBuffer(50, (STACK, H, W), n_step=3, rng=2)
    record(a, 1, 70)
    b = FrameReplayBuffer(50, (STACK, H, W), n_step=3, rng=9)
    b.load_state_dict(a.state_dict())
    for x, y in zip(a.sample(16), b.sample(16)):
        np.testing.assert_array_equal(x, y)
    b.end_episodes()
    assert not b.continuous.any() and b.dones[(b.pos - 1) % b.rows].all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="obs_shape must be"):
        FrameReplayBuffer(10, (84,))
    with pytest.raises(ValueError, match="at least 2 frames per env"):
        FrameReplayBuffer(3, (4, 8, 8), num_envs=2)
    buf = FrameReplayBuffer(10, (4, 8, 8))
    with pytest.raises(ValueError, match="next_obs has shape"):
        buf.add(np.zeros((1, 4, 8, 8)), [0], [0.0], np.zeros((1, 4, 8, 9)), [False], [False])
