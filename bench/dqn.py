"""DQN training throughput on CartPole-v1 with the rl-baselines3-zoo settings: zerodl vs Stable-Baselines3.

Run: ``python bench/dqn.py [--steps 50000] [--seed 0] [--threads 1] [--repeats 3] [--no-sb3]``.

The JSON line names the BLAS kernel NumPy ran (``blas``, via threadpoolctl when
installed). Where the machine forces an older kernel through
``OPENBLAS_CORETYPE``, measure NumPy's own choice with
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/dqn.py``.

Both libraries train the same configuration (lr 2.3e-3, batch 64, buffer 100k,
learning_starts 1000, gamma 0.99, target update every 10 steps, train_freq 256,
gradient_steps 128, epsilon 1 -> 0.04 over 16%, MLP 256-256, Huber loss, grad
norm clip 10, Adam), in this one process with the same BLAS/torch thread count.
Steps/s is env steps per second of wall time over the whole ``learn`` call
(acting, env stepping, replay and gradient steps; no periodic evaluation).
After training each agent is evaluated greedily on 20 episodes. SB3 runs only
when ``stable_baselines3`` is importable. The last line is a JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50_000, help="environment steps to train (default 50000)")
    p.add_argument("--seed", type=int, default=0, help="seed for both libraries (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS / torch threads for both libraries (default 1: small matmuls gain nothing from more)")
    p.add_argument("--repeats", type=int, default=3,
                   help="interleaved runs of each library; the medians are reported (default 3)")
    p.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3 even when it is installed")
    return p.parse_args()


ARGS = parse_args()
# Thread pools read these once, when numpy/torch load: set them before importing either.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from rl.dqn import DQN, DQNConfig  # noqa: E402
from rl.envs import make_env  # noqa: E402
from rl.evaluation import evaluate  # noqa: E402

ZOO = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
           target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
           exploration_final_eps=0.04)


def bench_zerodl(steps: int, seed: int) -> dict:
    config = DQNConfig(env_id="CartPole-v1", total_steps=steps, seed=seed, hidden=[256, 256], eval_every=0,
                       double=False, loss="huber", max_grad_norm=10.0, **ZOO)
    run = DQN(config)
    t = time.perf_counter()
    run.learn()
    seconds = time.perf_counter() - t
    result = evaluate(run.agent.greedy_actions, make_env("CartPole-v1"), episodes=20, seed=10_000 + seed)
    run.close()
    return {"steps_per_s": steps / seconds, "seconds": seconds, "updates": run.agent.num_updates,
            "eval_mean": result.mean, "eval_std": result.std}


def bench_sb3(steps: int, seed: int, threads: int) -> dict | None:
    try:
        import torch
        from stable_baselines3 import DQN as SB3DQN
    except ImportError:
        return None
    torch.set_num_threads(threads)
    model = SB3DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[256, 256]), seed=seed,
                   device="cpu", verbose=0, **ZOO)
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - t

    def policy(obs):
        return np.asarray(model.predict(obs, deterministic=True)[0]).reshape(1)

    result = evaluate(policy, make_env("CartPole-v1"), episodes=20, seed=10_000 + seed)
    return {"steps_per_s": steps / seconds, "seconds": seconds, "eval_mean": result.mean,
            "eval_std": result.std, "version": __import__("stable_baselines3").__version__}


def main() -> None:
    from blas_info import blas_info

    ours_runs, sb3_runs = [], []
    for r in range(ARGS.repeats):  # interleaved, so both libraries see the same machine load
        ours = bench_zerodl(ARGS.steps, ARGS.seed)
        ours_runs.append(ours)
        print(f"[{r + 1}/{ARGS.repeats}] zerodl: {ours['steps_per_s']:.0f} steps/s ({ours['seconds']:.1f} s, "
              f"{ours['updates']} updates), greedy eval {ours['eval_mean']:.1f} ± {ours['eval_std']:.1f}")
        sb3 = None if ARGS.no_sb3 else bench_sb3(ARGS.steps, ARGS.seed, ARGS.threads)
        if sb3 is None:
            continue
        sb3_runs.append(sb3)
        print(f"[{r + 1}/{ARGS.repeats}] sb3 {sb3['version']}: {sb3['steps_per_s']:.0f} steps/s "
              f"({sb3['seconds']:.1f} s), greedy eval {sb3['eval_mean']:.1f} ± {sb3['eval_std']:.1f}")
    ours_rate = float(np.median([o["steps_per_s"] for o in ours_runs]))
    figures = {"bench": "dqn_cartpole_zoo", "steps": ARGS.steps, "seed": ARGS.seed, "threads": ARGS.threads,
               "repeats": ARGS.repeats, **blas_info(), "zerodl_steps_per_s": round(ours_rate, 1),
               "zerodl_eval_mean": round(ours_runs[-1]["eval_mean"], 1)}
    if not sb3_runs:
        print("stable-baselines3 not importable: no ratio (pip install stable-baselines3 to compare)")
    else:
        sb3_rate = float(np.median([o["steps_per_s"] for o in sb3_runs]))
        figures.update(sb3_steps_per_s=round(sb3_rate, 1), sb3_eval_mean=round(sb3_runs[-1]["eval_mean"], 1),
                       ratio=round(ours_rate / sb3_rate, 2))
        print(f"medians of {ARGS.repeats}: zerodl {ours_rate:.0f} steps/s, SB3 {sb3_rate:.0f} steps/s, "
              f"ratio {ours_rate / sb3_rate:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
