"""Prioritized experience replay (Schaul et al. 2016, proportional variant).

:class:`SumTree` keeps priorities in a binary tree whose inner nodes hold the
sum of their children, so sampling proportional to priority and updating a
priority both cost ``O(log N)`` — and both are vectorised over a whole batch.
:class:`PrioritizedReplay` wraps any buffer with the ``add / gather /
sampleable`` interface (:class:`rl.replay.ReplayBuffer`,
:class:`rl.frame_replay.FrameReplayBuffer`) by composition.
"""
from __future__ import annotations

import numpy as np

from core.backend import as_generator

from .replay import ReplayBatch, check_positive_int


class SumTree:
    """Priorities of ``capacity`` leaves with prefix-sum search.

    Leaves live at ``tree[size + i]``; node ``k`` has children ``2k`` and ``2k + 1``
    and ``tree[1]`` is the total. Priorities are float64 so that a million
    small updates do not drift the sums.
    """

    def __init__(self, capacity: int):
        self.capacity = check_positive_int(capacity, "capacity", "SumTree")
        self.size = 1 << max(0, (self.capacity - 1).bit_length())
        self.depth = self.size.bit_length() - 1
        self.tree = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def __getitem__(self, indices):
        return self.tree[self.size + np.asarray(indices)]

    def update(self, indices, priorities) -> None:
        """Set leaf priorities ``(B,)`` (duplicates: the last one wins) and refresh the sums."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        priorities = np.broadcast_to(np.asarray(priorities, dtype=np.float64), indices.shape)
        if indices.size == 0:
            return
        if indices.min() < 0 or indices.max() >= self.capacity:
            raise IndexError(f"SumTree.update: indices must lie in [0, {self.capacity}), "
                             f"got range [{indices.min()}, {indices.max()}]")
        if not np.all(np.isfinite(priorities)) or np.any(priorities < 0):
            raise ValueError("SumTree.update: priorities must be finite and >= 0")
        if indices.size == 1:  # one env step: a scalar walk up is cheaper than np.unique
            node = int(indices[0]) + self.size
            tree = self.tree
            tree[node] = priorities[0]
            while node > 1:
                node >>= 1
                tree[node] = tree[2 * node] + tree[2 * node + 1]
            return
        nodes = indices + self.size
        self.tree[nodes] = priorities
        # Recompute parents from their children (not by adding deltas): exact and
        # correct when one batch touches the same leaf or parent twice.
        for _ in range(self.depth):
            nodes = np.unique(nodes >> 1)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def find(self, values) -> np.ndarray:
        """Leaf index ``i`` with ``prefix(i) <= value < prefix(i) + p_i`` for each value ``(B,)``."""
        values = np.array(values, dtype=np.float64).reshape(-1)
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * nodes
            left_sum = self.tree[left]
            go_right = values >= left_sum
            # Rounding can push a value past a non-empty left subtree into an
            # empty right one; stay left then.
            go_right &= self.tree[left + 1] > 0
            values -= left_sum * go_right
            nodes = left + go_right
        return np.minimum(nodes - self.size, self.capacity - 1)


class PrioritizedReplay:
    """Proportional prioritized replay around a replay buffer.

    Args:
        buffer: the storage (``ReplayBuffer`` or ``FrameReplayBuffer``).
        alpha: priority exponent, ``P(i) = p_i^alpha / sum_k p_k^alpha`` (0 = uniform).
        eps: added to ``|td_error|`` so that no transition gets probability 0.
        rng: seed or Generator for sampling.

    ``sample(batch_size, beta)`` returns importance weights
    ``w_i = (N * P(i))^(-beta) / max_j w_j``; anneal ``beta`` to 1 over training.
    """

    def __init__(self, buffer, *, alpha: float = 0.6, eps: float = 1e-6, rng=None):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"PrioritizedReplay: alpha must be in [0, 1], got {alpha}")
        if eps <= 0:
            raise ValueError(f"PrioritizedReplay: eps must be > 0, got {eps}")
        self.buffer = buffer
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.rng = as_generator(rng)
        self.tree = SumTree(buffer.capacity)
        self.max_priority = 1.0  # new transitions get the largest priority seen

    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def capacity(self) -> int:
        return self.buffer.capacity

    def add(self, *args, **kwargs) -> np.ndarray:
        """Add to the wrapped buffer; new valid slots get ``max_priority^alpha``, invalid ones 0."""
        flat = self.buffer.add(*args, **kwargs)
        ok = self.buffer.sampleable(flat)
        self.tree.update(flat, np.where(ok, self.max_priority ** self.alpha, 0.0))
        return flat

    def sample(self, batch_size: int, beta: float = 0.4) -> ReplayBatch:
        """Sample proportionally to priority; ``weights`` are the normalised IS weights."""
        check_positive_int(batch_size, "batch_size", "PrioritizedReplay.sample")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"PrioritizedReplay.sample: beta must be in [0, 1], got {beta}")
        total = self.tree.total
        if total <= 0:
            raise ValueError("PrioritizedReplay.sample: the buffer holds no valid transition yet")
        # Stratified: one uniform draw in each of batch_size equal slices of the total.
        values = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        idx = self.tree.find(values)
        bad = ~self.buffer.sampleable(idx)
        for _ in range(100):
            if not bad.any():
                break
            # Slots that cannot be sampled (context overwritten, reset steps) lose their priority.
            self.tree.update(idx[bad], 0.0)
            total = self.tree.total
            if total <= 0:
                raise ValueError("PrioritizedReplay.sample: the buffer holds no valid transition yet")
            idx[bad] = self.tree.find(self.rng.random(int(bad.sum())) * total)
            bad = ~self.buffer.sampleable(idx)
        if bad.any():  # pragma: no cover - only with a corrupted tree
            raise RuntimeError("PrioritizedReplay.sample: could not draw valid transitions")
        probs = self.tree[idx] / self.tree.total
        n = max(len(self.buffer), 1)
        weights = (n * probs) ** (-beta)
        weights = (weights / weights.max()).astype(np.float32)
        return self.buffer.gather(idx)._replace(weights=weights)

    def update_priorities(self, indices, td_errors) -> None:
        """Set ``p_i = (|td_error_i| + eps)^alpha`` for the sampled slots ``(B,)``."""
        p = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        if not np.all(np.isfinite(p)):
            raise ValueError("PrioritizedReplay.update_priorities: td_errors contain NaN or Inf")
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.update(indices, p ** self.alpha)

    def state_dict(self) -> dict:
        state = dict(self.buffer.state_dict())
        n = len(self.buffer)
        state["priorities"] = self.tree[np.arange(n)]
        state["max_priority"] = float(self.max_priority)
        state["per_rng"] = self.rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state)
        pr = np.asarray(state["priorities"], dtype=np.float64)
        self.tree.tree[:] = 0.0
        self.tree.update(np.arange(pr.size), pr)
        self.max_priority = float(state["max_priority"])
        self.rng.bit_generator.state = state["per_rng"]
