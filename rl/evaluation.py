"""Policy evaluation: mean and spread of episode returns on separate env instances."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EvalResult:
    """Returns ``(episodes,)`` and lengths ``(episodes,)`` of an evaluation."""

    returns: np.ndarray
    lengths: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f} over {len(self.returns)} episodes"


def evaluate(policy, env, *, episodes: int = 10, epsilon: float = 0.0, seed: int | None = None,
             max_steps: int | None = None) -> EvalResult:
    """Run ``episodes`` full episodes of ``policy`` on a single (non-vector) ``env``.

    Args:
        policy: maps a batch of observations ``(1, *obs_shape)`` to actions ``(1,)``
            (e.g. ``DQNAgent.greedy_actions``).
        env: a Gymnasium env, kept apart from the training envs so evaluation
            never disturbs their episodes.
        epsilon: probability of a uniformly random action (0 = greedy; Atari
            protocols use 0.05 or 0.001).
        seed: episode ``i`` resets with ``seed + i`` and exploration draws from a
            Generator seeded with ``seed``, so an evaluation is reproducible.
        max_steps: optional cap on each episode's length.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"evaluate: episodes must be a positive int, got {episodes!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"evaluate: epsilon must be in [0, 1], got {epsilon}")
    rng = np.random.default_rng(seed)
    num_actions = int(env.action_space.n)
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    for ep in range(episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + ep)
        done, total, steps = False, 0.0, 0
        while not done:
            if epsilon > 0 and rng.random() < epsilon:
                action = int(rng.integers(num_actions))
            else:
                action = int(policy(np.asarray(obs)[None])[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated or (max_steps is not None and steps >= max_steps)
        returns[ep], lengths[ep] = total, steps
    return EvalResult(returns, lengths)
