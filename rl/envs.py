"""Environment factory: Gymnasium ids -> (vector) envs with validated spaces.

* Any registered env with a ``Discrete`` action space and a ``Box`` observation
  space works through ``gymnasium.make``; training uses a ``SyncVectorEnv`` with
  ``NEXT_STEP`` autoreset (Gymnasium 1.x's default), evaluation plain envs.
* Atari ids (``ALE/Pong-v5``, ``PongNoFrameskip-v4``) get the Nature-DQN
  pipeline: ``AtariPreprocessing`` (no-op starts, frame skip 4 with max-pooling,
  84x84 grayscale), reward clipping to [-1, 1] for training, and
  ``FrameStackObservation(4)`` -> ``(4, 84, 84)`` uint8.
* Optional dependencies (Box2D, ale-py) missing -> :class:`MissingDependencyError`
  naming the pip command; unknown ids -> ``ValueError`` suggesting close names.
"""
from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

#: pip commands that install each optional extra.
INSTALL_HINTS = {
    "box2d": 'pip install "zerodl[box2d]"  (or: pip install "gymnasium[box2d]")',
    "atari": 'pip install "zerodl[atari]"  (or: pip install ale-py)',
    "render": 'pip install "gymnasium[classic-control]"  (pygame, for rgb_array frames of classic-control envs)',
}


class MissingDependencyError(ImportError):
    """An optional extra (Box2D, ale-py) needed by the requested env is not installed."""


def is_atari(env_id: str) -> bool:
    """True for ALE ids: ``ALE/<Game>-v5`` or the older ``<Game>NoFrameskip-v4``."""
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def _register_atari() -> None:
    try:
        import ale_py
    except ImportError as exc:
        raise MissingDependencyError(
            f"Atari environments need the optional extra 'atari' (ale-py), which is not installed; "
            f"install it with: {INSTALL_HINTS['atari']}") from exc
    gym.register_envs(ale_py)


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` for an unregistered id, suggesting the closest registered names."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string like 'CartPole-v1', got {env_id!r}")
    if is_atari(env_id):
        _register_atari()
    if env_id in gym.registry:
        return
    names = list(gym.registry)
    close = difflib.get_close_matches(env_id, names, n=3, cutoff=0.6)
    if not close:  # case slips ('cartpole-v1') are common: compare lower-cased too
        lower = {n.lower(): n for n in names}
        close = [lower[n] for n in difflib.get_close_matches(env_id.lower(), list(lower), n=3, cutoff=0.6)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
        "; list them with: python -c \"import gymnasium; gymnasium.pprint_registry()\""
    raise ValueError(f"unknown environment id {env_id!r}{hint}")


def validate_spaces(observation_space, action_space, where: str = "DQN"):
    """Check that DQN can work with these spaces; return ``(obs_shape, obs_dtype, num_actions)``."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(f"{where} needs a Discrete action space, got {action_space}")
    if action_space.n < 2:
        raise ValueError(f"{where} needs at least 2 actions, got {action_space}")
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(
            f"{where} needs a Box observation space (an array of numbers), got {observation_space}; "
            "wrap Discrete/Dict observations (e.g. gymnasium.wrappers.FlattenObservation) first")
    if observation_space.shape is None or len(observation_space.shape) == 0:
        raise ValueError(f"{where} needs observations with at least one dimension, got {observation_space}")
    return tuple(observation_space.shape), np.dtype(observation_space.dtype), int(action_space.n)


def _wrap_atari(env, frame_stack: int, clip_rewards: bool):
    from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation

    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                             terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    if clip_rewards:  # Mnih et al. 2015: one learning rate across games with different score scales
        env = ClipReward(env, -1.0, 1.0)
    return FrameStackObservation(env, frame_stack)


def make_env(env_id: str, *, render_mode: str | None = None, atari: bool | None = None,
             frame_stack: int = 4, clip_rewards: bool = True, env_kwargs: dict | None = None) -> gym.Env:
    """One environment, wrapped for DQN.

    Args:
        env_id: a registered Gymnasium id.
        render_mode: e.g. ``"rgb_array"`` for GIFs.
        atari: apply the Atari pipeline; ``None`` decides from the id.
        frame_stack, clip_rewards: Atari pipeline options (evaluation passes ``clip_rewards=False``).
        env_kwargs: extra keyword arguments for ``gymnasium.make``.
    """
    check_env_id(env_id)
    atari = is_atari(env_id) if atari is None else atari
    kwargs = dict(env_kwargs or {})
    if atari:
        kwargs.setdefault("frameskip", 1)  # AtariPreprocessing does the frame skipping
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        extra = "box2d" if "box2d" in str(exc).lower() else ("atari" if atari else None)
        hint = INSTALL_HINTS.get(extra, "pip install the package named above")
        raise MissingDependencyError(
            f"environment {env_id!r} needs an optional dependency that is not installed ({exc}); "
            f"install it with: {hint}") from exc
    if atari:
        env = _wrap_atari(env, frame_stack, clip_rewards)
    validate_spaces(env.observation_space, env.action_space, where=f"DQN on {env_id}")
    return env


def make_vector_env(env_id: str, num_envs: int = 1, **kwargs) -> SyncVectorEnv:
    """``num_envs`` copies of :func:`make_env` in a ``SyncVectorEnv`` with NEXT_STEP autoreset.

    The first copy is built here so that a bad id or space fails before anything else.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"make_vector_env: num_envs must be a positive int, got {num_envs!r}")
    first = make_env(env_id, **kwargs)
    envs = [first] + [None] * (num_envs - 1)

    def thunk(i):
        return lambda: envs[i] if envs[i] is not None else make_env(env_id, **kwargs)

    return SyncVectorEnv([thunk(i) for i in range(num_envs)], autoreset_mode=AutoresetMode.NEXT_STEP)


def sole_env(envs) -> gym.Env | None:
    """The one sub-environment of a plain one-env ``SyncVectorEnv`` (NEXT_STEP autoreset), else None.

    A training loop that resets such a vector env itself whenever its episode
    ends (so the vector env never autoresets) may step this env directly: the
    transitions are the same, without the vector env's per-step batching and copying.
    """
    if type(envs) is SyncVectorEnv and envs.num_envs == 1 and envs.autoreset_mode == AutoresetMode.NEXT_STEP:
        return envs.envs[0]
    return None


def reward_threshold(env_id: str) -> float | None:
    """The env's registered ``reward_threshold`` (CartPole-v1: 475), or None."""
    check_env_id(env_id)
    return gym.spec(env_id).reward_threshold
