"""Greedy-episode GIFs from ``rgb_array`` frames (Pillow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def record_episode(policy, env, *, seed: int | None = None, epsilon: float = 0.0, max_frames: int = 1000,
                   frame_skip: int = 1):
    """Play one episode and return ``(frames, episode_return)``.

    Args:
        policy: maps ``(1, *obs_shape)`` observations to ``(1,)`` actions.
        env: made with ``render_mode="rgb_array"``.
        frame_skip: keep every ``frame_skip``-th frame (smaller GIFs).
        max_frames: stop the episode after this many steps.

    ``frames`` is a list of ``(H, W, 3)`` uint8 arrays.
    """
    if getattr(env, "render_mode", None) != "rgb_array":
        raise ValueError(f"record_episode: env must be made with render_mode='rgb_array', "
                         f"got {getattr(env, 'render_mode', None)!r}")
    import gymnasium as gym

    from .envs import INSTALL_HINTS, MissingDependencyError

    rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        frames, total = [env.render()], 0.0
    except gym.error.DependencyNotInstalled as exc:
        raise MissingDependencyError(f"rendering frames needs an optional dependency ({exc}); install it with: "
                                     f"{INSTALL_HINTS['render']}") from exc
    for step in range(max_frames):
        if epsilon > 0 and rng.random() < epsilon:
            action = int(rng.integers(env.action_space.n))
        else:
            action = int(policy(np.asarray(obs)[None])[0])
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if (step + 1) % frame_skip == 0:
            frames.append(env.render())
        if terminated or truncated:
            break
    return [np.asarray(f, dtype=np.uint8) for f in frames if f is not None], total


def save_gif(frames, path, fps: float = 30.0) -> Path:
    """Write ``(H, W, 3)`` uint8 frames as an animated GIF (atomically); returns the path."""
    from PIL import Image

    from core.serialization import atomic_path

    if not frames:
        raise ValueError("save_gif: no frames to write")
    if fps <= 0:
        raise ValueError(f"save_gif: fps must be > 0, got {fps}")
    path = Path(path)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, int(round(1000 / fps))), loop=0, optimize=False)
    return path
