"""``zerodl dqn``: train, evaluate and watch DQN agents on Gymnasium environments.

  zerodl dqn train --env CartPole-v1            # the preset reaches 475+ within 50k steps
  zerodl dqn eval  --checkpoint runs/dqn/<run>/checkpoints/best.npz --episodes 20
  zerodl dqn play  --checkpoint runs/dqn/<run>/checkpoints/best.npz --gif cartpole.gif

A run folder holds config.json (resolved settings), metrics.csv (one row per
episode and per evaluation), learning_curve.png, checkpoints/last.npz and
best.npz, summary.json and episode.gif. Ctrl-C saves a checkpoint and exits;
``--resume --run-dir DIR`` continues it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter

    p = subparsers.add_parser("dqn", help="train / evaluate / watch DQN agents on Gymnasium envs",
                              description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="dqn_command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train an agent (progress bar, evaluations, run folder)",
                       formatter_class=HelpFormatter)
    t.add_argument("--env", default=None,
                   help="Gymnasium id with a Discrete action space (None: the --config file's env_id, "
                        "else CartPole-v1)")
    t.add_argument("--preset", default=None,
                   help="hyper-parameter preset (CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3, "
                        "atari); None: the one named after --env, 'atari' for ALE ids")
    t.add_argument("--config", type=Path, default=None, help="JSON/TOML file of settings overriding the preset")
    t.add_argument("--steps", type=int, default=None, help="environment steps to train (None: the preset's)")
    t.add_argument("--seed", type=int, default=None,
                   help="seed for envs, network init and sampling (None: the preset's, 0)")
    t.add_argument("--double", action=argparse.BooleanOptionalAction, default=None,
                   help="Double-DQN targets (None: the preset's choice)")
    t.add_argument("--dueling", action=argparse.BooleanOptionalAction, default=None,
                   help="dueling Q-network head (None: the preset's choice)")
    t.add_argument("--prioritized", action=argparse.BooleanOptionalAction, default=None,
                   help="prioritized replay (None: the preset's choice)")
    t.add_argument("--n-step", type=int, default=None, help="n-step returns (None: the preset's)")
    t.add_argument("--num-envs", type=int, default=None, help="parallel envs in the vector env (None: the preset's, 1)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set learning_rate=1e-3 --set hidden=[64,64] (repeatable)")
    t.add_argument("--run-dir", type=Path, default=None,
                   help="run folder (None: runs/dqn/<env>-<time>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from checkpoints/last.npz")
    t.add_argument("--save-replay", action="store_true", help="store the replay buffer in checkpoints/last.npz")
    t.add_argument("--no-gif", action="store_true", help="skip the GIF of a greedy episode at the end")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint (mean ± std of episode returns)",
                       formatter_class=HelpFormatter)
    e.add_argument("--checkpoint", type=Path, required=True, help="a checkpoints/*.npz file of a run")
    e.add_argument("--episodes", type=int, default=20, help="episodes to run")
    e.add_argument("--env", default=None, help="env id (default: the one the checkpoint was trained on)")
    e.add_argument("--epsilon", type=float, default=None, help="random-action probability (default: the run's)")
    e.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i")
    e.set_defaults(func=run_eval)

    g = sub.add_parser("play", help="record a greedy episode of a checkpoint as a GIF",
                       formatter_class=HelpFormatter)
    g.add_argument("--checkpoint", type=Path, required=True, help="a checkpoints/*.npz file of a run")
    g.add_argument("--gif", type=Path, required=True, help="output .gif path")
    g.add_argument("--seed", type=int, default=0, help="seed of the episode")
    g.add_argument("--fps", type=float, default=30.0, help="GIF frames per second")
    g.add_argument("--max-frames", type=int, default=1000, help="stop the episode after this many steps")
    g.set_defaults(func=run_play)


# ------------------------------------------------------------------------------ helpers
def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def parse_set(items) -> dict:
    """``["lr=1e-3", "hidden=[64,64]"]`` -> dict; values parse as JSON, else stay strings."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return out


def plot_learning_curve(rows, path, threshold=None, title=None) -> Path:
    """Episode returns (with a 20-episode running mean) and evaluation mean ± std against steps."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from core.serialization import atomic_path

    eps = [(r["step"], r["return"]) for r in rows if r.get("return") is not None]
    evals = [(r["step"], r["val_return"], r.get("val_return_std") or 0.0)
             for r in rows if r.get("val_return") is not None]
    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if eps:
        x, y = np.array(eps, dtype=float).T
        ax.plot(x, y, color="tab:blue", alpha=0.25, lw=0.8, label="episode return")
        k = min(20, len(y))
        running = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1:], running, color="tab:blue", lw=1.5, label=f"mean of last {k} episodes")
    if evals:
        x, m, s = np.array(evals, dtype=float).T
        ax.plot(x, m, "o-", color="tab:orange", lw=1.5, ms=3, label="evaluation mean")
        ax.fill_between(x, m - s, m + s, color="tab:orange", alpha=0.2, label="evaluation ± std")
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls="--", lw=1, label=f"reward threshold {threshold:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


class RunRecorder:
    """The app's callback: progress bar, metrics rows, checkpoints (last/best) on each evaluation."""

    def __init__(self, run_dir: Path, rows: list, progress: bool, save_replay: bool, total: int, start: int):
        from tqdm import tqdm

        self.run_dir, self.rows, self.save_replay = run_dir, rows, save_replay
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not progress,
                        smoothing=0.05, mininterval=0.5)
        self.shown = start

    def on_episode(self, run, step, ret, length):
        self.rows.append({"step": step, "episode": run.num_episodes, "return": ret, "length": length,
                          "epsilon": round(run.epsilon(step), 4)})

    def on_eval(self, run, step, result, improved):
        from rl.checkpoint import save_dqn_checkpoint

        self.rows.append({"step": step, "val_return": result.mean, "val_return_std": result.std})
        self.save(run)
        if improved:
            save_dqn_checkpoint(self.run_dir / "checkpoints" / "best.npz", run,
                                extra={"eval_mean": result.mean, "eval_std": result.std, "step": step})
        if run.threshold_step == step:
            self.bar.write(f"step {step}: evaluation {result} reached the reward threshold")

    def on_progress(self, run):
        if run.num_steps - self.shown >= 500 or run.num_steps >= run.config.total_steps:
            self.bar.update(run.num_steps - self.shown)
            self.shown = run.num_steps
            recent = run.recent_returns[-10:]
            post = {"eps": f"{run.epsilon(run.num_steps):.3f}"}
            if recent:
                post["return"] = f"{sum(recent) / len(recent):.1f}"
            if run.last_eval is not None:
                post["eval"] = f"{run.last_eval.mean:.1f}±{run.last_eval.std:.1f}"
            self.bar.set_postfix(post, refresh=False)

    def save(self, run) -> None:
        from core.plots import write_metrics_csv
        from rl.checkpoint import save_dqn_checkpoint

        save_dqn_checkpoint(self.run_dir / "checkpoints" / "last.npz", run, include_replay=self.save_replay)
        if self.rows:
            write_metrics_csv(self.run_dir / "metrics.csv", self.rows)
            plot_learning_curve(self.rows, self.run_dir / "learning_curve.png", run.reward_threshold,
                                title=f"DQN on {run.config.env_id}")


# ------------------------------------------------------------------------------ train
def run_train(args) -> int:
    from core.serialization import CheckpointError
    from rl.checkpoint import resume_run
    from rl.dqn import DQN
    from rl.envs import MissingDependencyError, check_env_id
    from rl.presets import resolve_config

    try:
        if args.resume:
            if args.run_dir is None:
                return _error("--resume needs --run-dir pointing at the run to continue")
            last = args.run_dir / "checkpoints" / "last.npz"
            if not last.is_file():
                return _error(f"--resume: {last} not found (was the run started with this --run-dir?)")
            run = resume_run(last, total_steps=args.steps)
            run_dir, config, preset = args.run_dir, run.config, None
        else:
            overrides = parse_set(args.set)
            overrides.update({k: v for k, v in (("total_steps", args.steps), ("seed", args.seed),
                                                 ("double", args.double), ("dueling", args.dueling),
                                                 ("prioritized", args.prioritized), ("n_step", args.n_step),
                                                 ("num_envs", args.num_envs)) if v is not None})
            config, preset = resolve_config(args.env, preset=args.preset, config_file=args.config,
                                            overrides=overrides)
            check_env_id(config.env_id)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = args.run_dir or Path("runs") / "dqn" / f"{config.env_id.replace('/', '_')}-{stamp}"
            if (run_dir / "checkpoints" / "last.npz").exists():
                return _error(f"{run_dir} already holds a run; continue it with --resume or pick another --run-dir")
            run = DQN(config)
    except (ValueError, MissingDependencyError, CheckpointError) as e:
        return _error(str(e))

    def on_sigint(signum, frame):  # first Ctrl-C: stop at the end of this step; second: abort
        run.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    rows = _previous_rows(run_dir, run.num_steps) if args.resume else []
    if args.resume:
        print(f"resuming DQN on {config.env_id} at step {run.num_steps} of {config.total_steps}; run folder {run_dir}",
              flush=True)
    else:
        print(f"DQN on {config.env_id} (preset {preset or 'none: generic defaults'}): {config.total_steps} steps, "
              f"run folder {run_dir}", flush=True)
    recorder = RunRecorder(run_dir, rows, not args.no_progress, args.save_replay, config.total_steps, run.num_steps)
    started = time.perf_counter()
    first_step = run.num_steps
    try:
        run.learn(recorder)
    finally:
        signal.signal(signal.SIGINT, previous)
        recorder.bar.close()
    interrupted = run.num_steps < config.total_steps
    recorder.save(run)
    seconds = time.perf_counter() - started
    summary = {"env_id": config.env_id, "steps": run.num_steps, "episodes": run.num_episodes,
               "steps_per_s": round((run.num_steps - first_step) / max(seconds, 1e-9), 1),
               "best_eval": None if math.isinf(run.best_eval) else run.best_eval,
               "last_eval_mean": None if run.last_eval is None else run.last_eval.mean,
               "last_eval_std": None if run.last_eval is None else run.last_eval.std,
               "reward_threshold": run.reward_threshold, "threshold_step": run.threshold_step,
               "interrupted": interrupted}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if interrupted:
        run.close()
        print(f"interrupted at step {run.num_steps}: checkpoint saved to {run_dir / 'checkpoints' / 'last.npz'}; "
              f"continue with: zerodl dqn train --resume --run-dir {run_dir}")
        return 130
    if not args.no_gif:
        _write_gif(run, run_dir / "episode.gif")
    run.close()
    if run.last_eval is not None:
        print(f"last evaluation: {run.last_eval}; best {run.best_eval:.1f}")
    if run.threshold_step is not None:
        print(f"reward threshold {run.reward_threshold:g} first reached at step {run.threshold_step}")
    elif run.reward_threshold is not None:
        print(f"reward threshold {run.reward_threshold:g} not reached")
    print(f"{summary['steps_per_s']:.0f} steps/s; run folder: {run_dir} "
          "(config.json, metrics.csv, learning_curve.png, checkpoints/, episode.gif)")
    return 0


def _previous_rows(run_dir: Path, step: int) -> list:
    """Metrics rows of a resumed run up to its checkpoint (later rows will be produced again)."""
    from core.plots import read_metrics_csv

    path = run_dir / "metrics.csv"
    return [r for r in read_metrics_csv(path) if (r.get("step") or 0) <= step] if path.is_file() else []


def _offscreen_rendering() -> None:
    """rgb_array frames need no window: keep SDL (pygame) from looking for a display."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def _write_gif(run, path: Path) -> None:
    from rl.envs import MissingDependencyError, make_env
    from rl.video import record_episode, save_gif

    _offscreen_rendering()
    try:
        env = make_env(run.config.env_id, render_mode="rgb_array", clip_rewards=False,
                       frame_stack=run.config.frame_stack)
        frames, ret = record_episode(run.agent.greedy_actions, env, seed=run.config.seed, max_frames=1000)
        env.close()
        save_gif(frames, path)
        print(f"GIF of a greedy episode (return {ret:.1f}): {path}")
    except (ValueError, MissingDependencyError, ImportError) as e:  # rendering needs e.g. pygame
        print(f"note: no GIF written ({e})")


# ------------------------------------------------------------------------------ eval / play
def run_eval(args) -> int:
    from core.serialization import CheckpointError
    from rl.checkpoint import load_policy
    from rl.envs import MissingDependencyError
    from rl.evaluation import evaluate

    if args.episodes < 1:
        return _error(f"--episodes must be >= 1, got {args.episodes}")
    try:
        config, agent, env = load_policy(args.checkpoint, args.env, clip_rewards=False)
        epsilon = config.eval_epsilon if args.epsilon is None else args.epsilon
        result = evaluate(agent.greedy_actions, env, episodes=args.episodes, epsilon=epsilon, seed=args.seed)
    except (ValueError, MissingDependencyError, CheckpointError) as e:
        return _error(str(e))
    env.close()
    env_id = args.env or config.env_id
    print(f"{env_id}: return {result.mean:.2f} ± {result.std:.2f} over {args.episodes} episodes "
          f"(epsilon {epsilon:g}; min {result.returns.min():.1f}, max {result.returns.max():.1f})")
    return 0


def run_play(args) -> int:
    from core.serialization import CheckpointError
    from rl.checkpoint import load_policy
    from rl.envs import MissingDependencyError
    from rl.video import record_episode, save_gif

    if args.max_frames < 1:
        return _error(f"--max-frames must be >= 1, got {args.max_frames}")
    _offscreen_rendering()
    try:
        config, agent, env = load_policy(args.checkpoint, None, render_mode="rgb_array", clip_rewards=False)
        frames, ret = record_episode(agent.greedy_actions, env, seed=args.seed, max_frames=args.max_frames)
        env.close()
        args.gif.parent.mkdir(parents=True, exist_ok=True)
        save_gif(frames, args.gif, fps=args.fps)
    except (ValueError, MissingDependencyError, CheckpointError, ImportError) as e:
        return _error(str(e))
    print(f"{config.env_id}: greedy episode return {ret:.1f}, {len(frames)} frames -> {args.gif}")
    return 0
