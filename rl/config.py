"""``DQNConfig``: every hyper-parameter of a DQN run, validated, with dict round trips.

:mod:`rl.presets` holds per-environment values; the app and config files
override them by field name (unknown names are rejected with a suggestion).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class DQNConfig:
    """Every hyper-parameter of a run; :mod:`rl.presets` holds per-environment values."""

    env_id: str = "CartPole-v1"
    total_steps: int = 50_000          # environment transitions to collect
    seed: int = 0
    num_envs: int = 1
    # network
    network: str = "auto"              # "mlp", "nature_cnn" or "auto" (from the observation shape)
    hidden: list = field(default_factory=lambda: [256, 256])
    dueling: bool = False
    # optimisation
    optimizer: str = "adam"            # "adam" or "rmsprop"
    learning_rate: float = 2.3e-3
    learning_rate_final: float | None = None  # linear decay to this value over training (None: constant)
    adam_eps: float = 1e-8
    batch_size: int = 64
    loss: str = "huber"                # "huber" (smooth L1, delta 1) or "mse"
    max_grad_norm: float | None = 10.0
    gamma: float = 0.99
    # replay
    buffer_size: int = 100_000
    learning_starts: int = 1000
    train_freq: int = 256
    gradient_steps: int = 128
    n_step: int = 1
    prioritized: bool = False
    per_alpha: float = 0.6
    per_beta: float = 0.4              # annealed linearly to 1 over training
    per_eps: float = 1e-6
    frame_replay: bool | None = None   # store stacked frames once; None: on for image observations
    # target network
    target_update_interval: int = 10   # environment steps between target updates
    tau: float = 1.0                   # 1.0: hard copy; < 1: Polyak averaging
    double: bool = False
    # exploration
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.04
    exploration_fraction: float = 0.16
    # evaluation
    eval_every: int = 5_000            # environment steps between evaluations (0: never)
    eval_episodes: int = 20
    eval_epsilon: float = 0.0
    # Atari pipeline
    frame_stack: int = 4
    clip_rewards: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> "DQNConfig":
        """Raise ``ValueError`` naming the first bad field."""
        def need(ok, name, expected):
            if not ok:
                raise ValueError(f"DQNConfig: {name} must be {expected}, got {getattr(self, name)!r}")

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        for name in ("total_steps", "num_envs", "batch_size", "buffer_size", "train_freq",
                     "gradient_steps", "n_step", "target_update_interval", "eval_episodes", "frame_stack"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an int >= 1")
        for name in ("learning_starts", "eval_every", "seed"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 0, name, "an int >= 0")
        need(isinstance(self.env_id, str) and bool(self.env_id), "env_id", "a Gymnasium id")
        need(self.network in ("auto", "mlp", "nature_cnn"), "network", "'auto', 'mlp' or 'nature_cnn'")
        need(isinstance(self.hidden, (list, tuple)) and len(self.hidden) > 0
             and all(is_int(h) and h >= 1 for h in self.hidden), "hidden", "a non-empty list of widths")
        need(self.optimizer in ("adam", "rmsprop"), "optimizer", "'adam' or 'rmsprop'")
        need(self.loss in ("huber", "mse"), "loss", "'huber' or 'mse'")
        need(_finite(self.learning_rate) and self.learning_rate > 0, "learning_rate", "a number > 0")
        need(self.learning_rate_final is None or (_finite(self.learning_rate_final) and self.learning_rate_final >= 0),
             "learning_rate_final", "None or a number >= 0")
        need(self.max_grad_norm is None or (_finite(self.max_grad_norm) and self.max_grad_norm > 0),
             "max_grad_norm", "None or a number > 0")
        for name in ("gamma", "per_alpha", "per_beta", "exploration_initial_eps", "exploration_final_eps",
                     "exploration_fraction", "eval_epsilon"):
            need(_finite(getattr(self, name)) and 0.0 <= getattr(self, name) <= 1.0, name, "a number in [0, 1]")
        need(_finite(self.tau) and 0.0 < self.tau <= 1.0, "tau", "a number in (0, 1]")
        need(_finite(self.adam_eps) and self.adam_eps > 0, "adam_eps", "a number > 0")
        need(_finite(self.per_eps) and self.per_eps > 0, "per_eps", "a number > 0")
        need(self.buffer_size >= self.num_envs * 2, "buffer_size", f"at least 2 * num_envs ({2 * self.num_envs})")
        return self

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "DQNConfig":
        """Build from a dict; an unknown key raises ``ValueError`` suggesting the closest field."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"DQNConfig: unknown setting {key!r}{hint}")
        return cls(**values)


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)
