"""Preallocated ring-buffer experience replay with n-step returns.

Storage is laid out ``(rows, num_envs, ...)``: each call to :meth:`ReplayBuffer.add`
writes one row holding one transition per sub-environment, so every column is
the time-ordered stream of one environment. That order is what lets n-step
returns be computed at sampling time by looking a few rows ahead in the same
column (no per-env deques at insertion time).

Gymnasium 1.x conventions are built in:

* ``terminated`` (a true end state) stops bootstrapping; ``truncated`` (a time
  limit) ends the episode but the target still bootstraps from the final
  observation.
* With ``NEXT_STEP`` autoreset vector envs, the step after an episode end is a
  reset step whose action is ignored; the caller passes ``valid=False`` for
  those entries and they are never sampled.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.backend import as_generator


class ReplayBatch(NamedTuple):
    """A sampled mini-batch; ``B`` is the batch size.

    obs, next_obs: ``(B, *obs_shape)`` in the stored dtype (uint8 stays uint8).
    actions: ``(B,)`` int64.
    rewards: ``(B,)`` float32, the n-step discounted reward sum.
    terminated: ``(B,)`` float32, 1.0 where the (last) step reached a terminal state.
    discounts: ``(B,)`` float32, ``gamma ** k`` for the ``k`` steps summed in ``rewards``.
    indices: ``(B,)`` int64 flat slot indices (used to update priorities).
    weights: ``(B,)`` float32 importance-sampling weights, or None for uniform sampling.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    discounts: np.ndarray
    indices: np.ndarray
    weights: np.ndarray | None = None


def check_positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def nstep_lookahead(rewards, dones, row, col, available, n_step: int, gamma: float):
    """n-step discounted returns for sampled slots, read ahead in each env's column.

    Args:
        rewards, dones: ``(rows, num_envs)`` stored per-step rewards and episode-end
            flags (terminated or truncated).
        row, col: ``(B,)`` slot coordinates of the first step.
        available: ``(B,)`` steps written at or after ``row`` (stop before the write
            pointer: older data lives there).
        n_step: maximum number of steps to sum.

    Returns:
        ``(returns, last_row, k)``: the discounted sum ``sum_j gamma^j r_{t+j}`` over
        the ``k`` steps up to the first episode end, ``n_step`` or ``available``;
        ``last_row`` is the row whose next observation the target bootstraps from.
    """
    rows = rewards.shape[0]
    offsets = np.arange(n_step)
    r_idx = (row[:, None] + offsets) % rows  # (B, n)
    r = rewards[r_idx, col[:, None]]
    d = dones[r_idx, col[:, None]]
    # step j counts when no earlier step ended the episode and it was written.
    alive = np.ones_like(r, dtype=bool)
    if n_step > 1:
        alive[:, 1:] = np.cumsum(d[:, :-1], axis=1) == 0
    alive &= offsets < available[:, None]
    k = alive.sum(axis=1)
    returns = (r * alive * (gamma ** offsets)).sum(axis=1, dtype=np.float64).astype(np.float32)
    last_row = (row + k - 1) % rows
    return returns, last_row, k


class RingSlots:
    """Size accounting of a ring of ``rows`` x ``num_envs`` slots written row by row
    (``pos``: next row, ``full``: wrapped at least once); shared by the replay buffers."""

    rows: int
    num_envs: int
    pos: int
    full: bool

    @property
    def capacity(self) -> int:
        return self.rows * self.num_envs

    def __len__(self) -> int:
        """Number of stored slots (valid or not)."""
        return self.filled_rows * self.num_envs

    @property
    def filled_rows(self) -> int:
        return self.rows if self.full else self.pos


class ReplayBuffer(RingSlots):
    """Uniform experience replay over ``capacity`` transitions.

    Args:
        capacity: total transitions held (rounded down to a multiple of ``num_envs``).
        obs_shape: shape of one observation, e.g. ``(4,)``.
        obs_dtype: stored observation dtype (``uint8`` for images; never upcast).
        num_envs: transitions added per :meth:`add` call (vector env size).
        n_step: 1 for one-step TD targets; ``n`` sums ``n`` discounted rewards and
            bootstraps from the ``n``-th next observation (Sutton 1988; Hessel et al. 2018).
        gamma: discount, needed for n-step returns and the returned ``discounts``.
        rng: seed or ``numpy.random.Generator`` used for sampling.
    """

    def __init__(self, capacity: int, obs_shape, obs_dtype=np.float32, *, num_envs: int = 1,
                 n_step: int = 1, gamma: float = 0.99, rng=None):
        capacity = check_positive_int(capacity, "capacity", "ReplayBuffer")
        self.num_envs = check_positive_int(num_envs, "num_envs", "ReplayBuffer")
        self.n_step = check_positive_int(n_step, "n_step", "ReplayBuffer")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"ReplayBuffer: gamma must be in [0, 1], got {gamma}")
        if capacity < num_envs:
            raise ValueError(f"ReplayBuffer: capacity {capacity} is smaller than num_envs {num_envs}")
        self.gamma = float(gamma)
        self.rows = capacity // num_envs
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.obs_dtype = np.dtype(obs_dtype)
        self.rng = as_generator(rng)
        shape = (self.rows, self.num_envs)
        self.obs = np.zeros(shape + self.obs_shape, dtype=self.obs_dtype)
        self.next_obs = np.zeros(shape + self.obs_shape, dtype=self.obs_dtype)
        self.actions = np.zeros(shape, dtype=np.int64)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)
        self.pos = 0
        self.full = False
        self._num_invalid = 0  # invalid slots currently stored (skip the check when zero)

    # ------------------------------------------------------------------- add
    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid=None) -> np.ndarray:
        """Store one transition per env; returns the flat slot indices written ``(num_envs,)``.

        Args:
            obs, next_obs: ``(num_envs, *obs_shape)``; ``next_obs`` is the observation the
                step returned (for an episode end: the final one, before any reset).
            actions: ``(num_envs,)`` ints.
            rewards, terminated, truncated: ``(num_envs,)``.
            valid: ``(num_envs,)`` bools, False for NEXT_STEP autoreset steps (never sampled).
        """
        n = self.num_envs
        obs = np.asarray(obs)
        if obs.shape != (n,) + self.obs_shape:
            raise ValueError(f"ReplayBuffer.add: obs has shape {obs.shape}, expected {(n,) + self.obs_shape}")
        p = self.pos
        if self.full:
            self._num_invalid -= int(n - np.count_nonzero(self.valid[p]))
        self.obs[p] = obs
        self.next_obs[p] = next_obs
        self.actions[p] = actions
        self.rewards[p] = rewards
        self.terminated[p] = terminated
        np.logical_or(terminated, truncated, out=self.dones[p])
        if valid is None:
            self.valid[p] = True
        else:
            self.valid[p] = valid
            self._num_invalid += int(n - np.count_nonzero(self.valid[p]))
        self.pos = p + 1
        if self.pos == self.rows:
            self.pos, self.full = 0, True
        return np.arange(p * n, (p + 1) * n)

    def end_episodes(self) -> None:
        """Mark the newest step of every env as an episode end (bootstrapped, like a time limit).

        Used after a resume: the environments restart, so n-step returns must not
        run from the saved episodes into the new ones.
        """
        if len(self):
            self.dones[(self.pos - 1) % self.rows] = True

    # --------------------------------------------------------------- sample
    def sampleable(self, flat) -> np.ndarray:
        """Bool mask over flat slot indices that may be sampled."""
        return self.valid.reshape(-1)[flat]

    def sample_indices(self, batch_size: int) -> np.ndarray:
        """Uniform flat slot indices over valid stored transitions ``(batch_size,)``."""
        high = len(self)
        if high == 0 or (self._num_invalid >= high):
            raise ValueError("ReplayBuffer.sample: the buffer holds no valid transition yet")
        idx = self.rng.integers(0, high, size=batch_size)
        if self._num_invalid:
            bad = ~self.sampleable(idx)
            while bad.any():  # rejection: invalid slots are rare (one per episode end)
                idx[bad] = self.rng.integers(0, high, size=int(bad.sum()))
                bad = ~self.sampleable(idx)
        return idx

    def sample(self, batch_size: int) -> ReplayBatch:
        """A uniformly sampled :class:`ReplayBatch` (``weights`` None)."""
        check_positive_int(batch_size, "batch_size", "ReplayBuffer.sample")
        return self.gather(self.sample_indices(batch_size))

    def gather(self, flat) -> ReplayBatch:
        """Build the batch for the given flat slot indices ``(B,)``."""
        n = self.num_envs
        flat = np.asarray(flat, dtype=np.int64)
        # np.take along axis 0 copies whole rows; obs[flat] runs NumPy's general fancy
        # indexing, ~10x slower for small rows (an 8,192-draw burst of CartPole observations)
        obs = np.take(self.obs.reshape((-1,) + self.obs_shape), flat, axis=0)
        actions = np.take(self.actions.reshape(-1), flat)
        if self.n_step == 1:
            rewards = np.take(self.rewards.reshape(-1), flat)
            next_obs = np.take(self.next_obs.reshape((-1,) + self.obs_shape), flat, axis=0)
            terminated = np.take(self.terminated.reshape(-1), flat)
            discounts = np.full(flat.shape, self.gamma, dtype=np.float32)
            return ReplayBatch(obs, actions, rewards, next_obs, terminated, discounts, flat)
        row, col = np.divmod(flat, n)
        available = (self.pos - row - 1) % self.rows + 1
        rewards, last_row, k = nstep_lookahead(self.rewards, self.dones, row, col, available,
                                               self.n_step, self.gamma)
        next_obs = self.next_obs[last_row, col]
        terminated = self.terminated[last_row, col]
        discounts = (self.gamma ** k).astype(np.float32)
        return ReplayBatch(obs, actions, rewards, next_obs, terminated, discounts, flat)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Arrays (only the filled rows), counters and the sampling RNG state, for checkpoints."""
        m = self.filled_rows
        return {"obs": self.obs[:m], "next_obs": self.next_obs[:m], "actions": self.actions[:m],
                "rewards": self.rewards[:m], "terminated": self.terminated[:m], "dones": self.dones[:m],
                "valid": self.valid[:m], "pos": int(self.pos), "full": bool(self.full),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        m = int(np.asarray(state["obs"]).shape[0])
        if np.asarray(state["obs"]).shape[1:] != self.obs.shape[1:] or m > self.rows:
            raise ValueError(
                f"ReplayBuffer.load_state_dict: stored observations {np.asarray(state['obs']).shape} do not "
                f"fit this buffer's {self.obs.shape}")
        for name in ("obs", "next_obs", "actions", "rewards", "terminated", "dones", "valid"):
            getattr(self, name)[:m] = state[name]
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        self._num_invalid = int(m * self.num_envs - np.count_nonzero(self.valid[:m]))
        self.rng.bit_generator.state = state["rng"]
