"""Memory-saving replay for frame-stacked image observations.

A stacked observation ``(S, H, W)`` shares ``S - 1`` frames with the next one,
so storing ``obs`` and ``next_obs`` whole keeps every frame ``2 S`` times. This
buffer stores each frame once (the newest frame of every observation it
sees) and rebuilds stacks at sampling time, as in DQN's original replay
memory (Mnih et al. 2015): one million 84x84 frames take 7 GB instead of 56 GB.

Layout is ``(rows, num_envs, H, W)``: slot ``(j, e)`` holds the newest frame of
env ``e``'s observation after the ``j``-th call, plus the transition that led
to it (``valid``). An episode's first frame sits in a slot of its own with
``valid=False`` — with ``NEXT_STEP`` autoreset that is exactly the reset step,
and before the very first transition :meth:`add` writes one itself. ``age``
counts frames since the episode start, so stacks near a start repeat the first
frame, as ``FrameStackObservation(padding_type="reset")`` does.
"""
from __future__ import annotations

import numpy as np

from core.backend import as_generator

from .replay import ReplayBatch, RingSlots, check_positive_int, nstep_lookahead


class FrameReplayBuffer(RingSlots):
    """Replay storing each frame of ``(S, H, W)`` stacked observations once.

    Args:
        capacity: frames held in total (rounded down to a multiple of ``num_envs``).
        obs_shape: stacked observation shape ``(S, H, W)`` (stack axis first, as
            ``gymnasium.wrappers.FrameStackObservation`` returns it).
        obs_dtype: frame dtype, normally ``uint8``.
        num_envs, n_step, gamma, rng: as in :class:`rl.replay.ReplayBuffer`.
    """

    def __init__(self, capacity: int, obs_shape, obs_dtype=np.uint8, *, num_envs: int = 1,
                 n_step: int = 1, gamma: float = 0.99, rng=None):
        capacity = check_positive_int(capacity, "capacity", "FrameReplayBuffer")
        self.num_envs = check_positive_int(num_envs, "num_envs", "FrameReplayBuffer")
        self.n_step = check_positive_int(n_step, "n_step", "FrameReplayBuffer")
        obs_shape = tuple(int(s) for s in obs_shape)
        if len(obs_shape) < 2 or obs_shape[0] < 1:
            raise ValueError(f"FrameReplayBuffer: obs_shape must be (stack, *frame_shape), got {obs_shape}")
        if capacity < 2 * num_envs:
            raise ValueError(f"FrameReplayBuffer: capacity {capacity} must hold at least 2 frames per env")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"FrameReplayBuffer: gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        self.obs_shape = obs_shape
        self.stack = obs_shape[0]
        self.frame_shape = obs_shape[1:]
        self.obs_dtype = np.dtype(obs_dtype)
        self.rows = capacity // num_envs
        self.rng = as_generator(rng)
        shape = (self.rows, self.num_envs)
        # np.zeros maps untouched pages lazily: resident memory grows as frames arrive.
        self.frames = np.zeros(shape + self.frame_shape, dtype=self.obs_dtype)
        self.actions = np.zeros(shape, dtype=np.int64)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)
        self.age = np.zeros(shape, dtype=np.uint8)
        self.continuous = np.zeros(self.num_envs, dtype=bool)
        self.pos = 0
        self.full = False

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays once every slot is written."""
        return sum(a.nbytes for a in (self.frames, self.actions, self.rewards, self.terminated,
                                      self.dones, self.valid, self.age))

    # ------------------------------------------------------------------- add
    def _write_row(self, frames, actions, rewards, terminated, dones, valid) -> int:
        p = self.pos
        prev_age = self.age[p - 1] if (p > 0 or self.full) else np.zeros(self.num_envs, np.uint8)
        self.frames[p] = frames
        self.actions[p] = actions
        self.rewards[p] = rewards
        self.terminated[p] = terminated
        self.dones[p] = dones
        self.valid[p] = valid
        self.age[p] = np.where(valid, np.minimum(prev_age.astype(np.int64) + 1, self.stack - 1), 0)
        self.pos = p + 1
        if self.pos == self.rows:
            self.pos, self.full = 0, True
        return p

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid=None) -> np.ndarray:
        """Store one step per env; only ``next_obs[:, -1]`` (the new frame) is copied.

        Arguments as :meth:`rl.replay.ReplayBuffer.add`; ``obs``/``next_obs`` are
        ``(num_envs, S, H, W)``. For ``valid=False`` entries (NEXT_STEP reset steps)
        ``next_obs`` is the new episode's first observation. Returns the flat
        slot indices written ``(num_envs,)``.
        """
        n = self.num_envs
        next_obs = np.asarray(next_obs)
        if next_obs.shape != (n,) + self.obs_shape:
            raise ValueError(f"FrameReplayBuffer.add: next_obs has shape {next_obs.shape}, "
                             f"expected {(n,) + self.obs_shape}")
        valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        needs_start = valid & ~self.continuous
        if needs_start.any():
            if not needs_start[valid].all() or not (~self.continuous).all():
                raise ValueError(
                    "FrameReplayBuffer.add: an env started a new episode without a reset step; this "
                    "buffer needs vector envs with autoreset_mode=NEXT_STEP (gymnasium's default)")
            # The first observation of the run: store its newest frame as an episode start.
            zeros = np.zeros(n)
            self._write_row(np.asarray(obs)[:, -1], 0, zeros, zeros, False, False)
        dones = np.logical_or(terminated, truncated) & valid
        p = self._write_row(next_obs[:, -1], actions, rewards, terminated, dones, valid)
        # After a reset step the stored frame starts the new episode; after an
        # episode end the next observation comes from a reset we have not seen.
        self.continuous = ~dones
        return np.arange(p * n, (p + 1) * n)

    def end_episodes(self) -> None:
        """Mark the newest step of every env as an episode end (bootstrapped, like a time limit);
        the next :meth:`add` then stores the new episodes' first frames. Used after a resume."""
        if len(self):
            last = (self.pos - 1) % self.rows
            self.dones[last] |= self.valid[last]
        self.continuous[:] = False

    # --------------------------------------------------------------- sample
    def sampleable(self, flat) -> np.ndarray:
        """Bool mask: valid transitions whose whole frame context is still stored."""
        flat = np.asarray(flat, dtype=np.int64)
        row, col = np.divmod(flat, self.num_envs)
        ok = self.valid[row, col] & (flat < len(self))
        if self.full:
            older = (row - self.pos) % self.rows  # rows older than `row` still held
            need = 1 + np.minimum(self.age[(row - 1) % self.rows, col], self.stack - 1)
            ok &= older >= need
        return ok

    def sample_indices(self, batch_size: int) -> np.ndarray:
        high = len(self)
        if high == 0 or not self.valid.any():
            raise ValueError("FrameReplayBuffer.sample: the buffer holds no valid transition yet")
        idx = self.rng.integers(0, high, size=batch_size)
        bad = ~self.sampleable(idx)
        while bad.any():  # rejection: only episode starts and the oldest few slots fail
            idx[bad] = self.rng.integers(0, high, size=int(bad.sum()))
            bad = ~self.sampleable(idx)
        return idx

    def sample(self, batch_size: int) -> ReplayBatch:
        check_positive_int(batch_size, "batch_size", "FrameReplayBuffer.sample")
        return self.gather(self.sample_indices(batch_size))

    def _stacks(self, newest_row, col) -> np.ndarray:
        """Rebuild ``(B, S, H, W)`` stacks whose newest frame is at ``(newest_row, col)``."""
        back = np.arange(self.stack - 1, -1, -1)  # S-1 ... 0 frames back from the newest
        age = self.age[newest_row, col].astype(np.int64)
        rows = (newest_row[:, None] - np.minimum(back[None, :], age[:, None])) % self.rows
        return self.frames[rows, col[:, None]]

    def gather(self, flat) -> ReplayBatch:
        flat = np.asarray(flat, dtype=np.int64)
        row, col = np.divmod(flat, self.num_envs)
        obs = self._stacks((row - 1) % self.rows, col)
        actions = self.actions[row, col]
        if self.n_step == 1:
            last_row = row
            rewards = self.rewards[row, col]
            discounts = np.full(flat.shape, self.gamma, dtype=np.float32)
        else:
            available = (self.pos - row - 1) % self.rows + 1
            rewards, last_row, k = nstep_lookahead(self.rewards, self.dones, row, col, available,
                                                   self.n_step, self.gamma)
            discounts = (self.gamma ** k).astype(np.float32)
        next_obs = self._stacks(last_row, col)
        terminated = self.terminated[last_row, col]
        return ReplayBatch(obs, actions, rewards, next_obs, terminated, discounts, flat)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        m = self.rows if self.full else self.pos
        return {"frames": self.frames[:m], "actions": self.actions[:m], "rewards": self.rewards[:m],
                "terminated": self.terminated[:m], "dones": self.dones[:m], "valid": self.valid[:m],
                "age": self.age[:m], "continuous": self.continuous.copy(), "pos": int(self.pos),
                "full": bool(self.full), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        frames = np.asarray(state["frames"])
        m = frames.shape[0]
        if frames.shape[1:] != self.frames.shape[1:] or m > self.rows:
            raise ValueError(f"FrameReplayBuffer.load_state_dict: stored frames {frames.shape} do not fit "
                             f"this buffer's {self.frames.shape}")
        for name in ("frames", "actions", "rewards", "terminated", "dones", "valid", "age"):
            getattr(self, name)[:m] = state[name]
        self.continuous[:] = state["continuous"]
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        self.rng.bit_generator.state = state["rng"]
