"""DQN checkpoints: config, online/target networks, optimizer, counters, RNG states, optional replay.

Written atomically through :func:`core.serialization.save_checkpoint` (``.npz``
or ``.safetensors``; nothing is pickled), so an interrupted save never
corrupts the previous file.
"""
from __future__ import annotations

from pathlib import Path

from core.serialization import CheckpointError, load_checkpoint, save_checkpoint

from .agent import DQNAgent
from .dqn import DQN, DQNConfig, check_spaces
from .envs import make_env, validate_spaces

KIND = "zerodl.dqn"


def save_dqn_checkpoint(path, run: DQN, *, include_replay: bool = False, extra: dict | None = None) -> Path:
    """Save ``run`` to ``path``; ``include_replay`` adds the replay buffer (large for images)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, kind=KIND, config=run.config.to_dict(),
                    run=run.state_dict(include_replay=include_replay), extra=extra or {})
    return path


def load_dqn_checkpoint(path) -> dict:
    """Read a DQN checkpoint: ``{"config": DQNConfig, "run": state, "extra": dict}``.

    Raises :class:`core.serialization.CheckpointError` (a ``ValueError``) naming
    the file when it is missing, unreadable or not a DQN checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    parts = load_checkpoint(path)
    if parts.get("kind") != KIND or "config" not in parts or "run" not in parts:
        raise CheckpointError(f"{path}: not a zerodl DQN checkpoint (kind {parts.get('kind')!r})")
    try:
        config = DQNConfig.from_dict(dict(parts["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: stored config is invalid ({e})") from None
    return {"config": config, "run": parts["run"], "extra": parts.get("extra") or {}}


def resume_run(path, *, total_steps: int | None = None, envs=None) -> DQN:
    """Rebuild the :class:`DQN` saved at ``path`` and restore its state; optionally extend ``total_steps``."""
    ckpt = load_dqn_checkpoint(path)
    config = ckpt["config"]
    if total_steps is not None:
        config.total_steps = int(total_steps)
        config.validate()
    run = DQN(config, envs=envs)
    try:
        run.load_state_dict(ckpt["run"])
    except ValueError:
        run.close()
        raise
    return run


def load_policy(path, env_id: str | None = None, **env_kwargs):
    """Load a checkpoint's online network for evaluation on ``env_id`` (default: its own env).

    Returns ``(config, agent, env)``: ``env`` is a fresh single env (keyword
    arguments go to :func:`rl.envs.make_env`). Raises ``ValueError`` when the
    checkpoint's observation/action shapes do not match the env's.
    """
    ckpt = load_dqn_checkpoint(path)
    config = ckpt["config"]
    env_id = env_id or config.env_id
    env_kwargs.setdefault("frame_stack", config.frame_stack)
    env = make_env(env_id, **env_kwargs)
    try:
        obs_shape, _, num_actions = validate_spaces(env.observation_space, env.action_space, f"DQN on {env_id}")
        check_spaces(ckpt["run"]["spaces"], obs_shape, num_actions, env_id)
        agent = DQNAgent(config, obs_shape, num_actions)
        agent.q.load_state_dict(ckpt["run"]["agent"]["q"])
    except BaseException:
        env.close()
        raise
    return config, agent, env
