"""The DQN target experiments: presets on CartPole, Acrobot, MountainCar, LunarLander; Atari memory and speed.

Run: ``python bench/dqn_targets.py [--targets cartpole,acrobot,...] [--jobs 2] [--set KEY=VALUE ...]``.

Each target trains its env's preset (``rl/presets.py``) for the preset's
``total_steps`` on several seeds, with the preset's periodic evaluation
(mean over ``eval_episodes`` greedy episodes on separate env instances), and
checks the issue's criterion:

* cartpole: eval mean >= 475 reached in 5 of 5 seeds, and >= 475 at the end in >= 4 of 5 (50k steps)
* acrobot: eval mean >= -100 within 100k steps;  mountaincar: >= -110 within 120k steps
* lunarlander: >= 200 within 200k steps in >= 2 of 3 seeds (needs Box2D)
* atari: ALE/Pong-v5 with the atari preset (1M-frame replay) for ``--atari-steps`` steps: steps/s and
  resident memory; ``--atari-fill`` also writes 1M synthetic frames into the replay to measure its full size.

Prints one line per run and, last, a JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TARGETS = {
    # name: (env id, seeds, criterion value, "reached" seeds needed, "still at the end" seeds needed)
    "cartpole": ("CartPole-v1", 5, 475.0, 5, 4),
    "acrobot": ("Acrobot-v1", 1, -100.0, 1, 0),
    "mountaincar": ("MountainCar-v0", 1, -110.0, 1, 0),
    "lunarlander": ("LunarLander-v3", 3, 200.0, 2, 0),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default="cartpole,acrobot,mountaincar,lunarlander,atari",
                   help="comma-separated targets to run")
    p.add_argument("--seeds", type=int, default=None, help="override the number of seeds of every target")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed+1, ...")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset setting for every run (tuning)")
    p.add_argument("--atari-steps", type=int, default=3000, help="environment steps of the Atari speed run")
    p.add_argument("--atari-fill", action="store_true", help="fill the 1M-frame replay to measure its full size")
    return p.parse_args()


ARGS = parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def rss_gb() -> float:
    """Resident memory of this process in GB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return 0.0


def train_one(job):
    """Train one preset run; returns its figures (runs in a worker process)."""
    from apps.dqn import parse_set
    from rl.dqn import DQN
    from rl.presets import resolve_config

    env_id, seed, sets = job
    overrides = parse_set(sets)
    overrides["seed"] = seed
    config, _ = resolve_config(env_id, overrides=overrides)
    run = DQN(config)
    evals = []

    class Record:
        def on_eval(self, r, step, result, improved):
            evals.append((step, round(result.mean, 2), round(result.std, 2)))

    t = time.perf_counter()
    run.learn(Record())
    seconds = time.perf_counter() - t
    run.close()
    return {"env_id": env_id, "seed": seed, "steps": run.num_steps, "seconds": round(seconds, 1),
            "threshold_step": run.threshold_step, "final_eval": evals[-1][1] if evals else None,
            "best_eval": max((e[1] for e in evals), default=None), "evals": evals}


def run_target(name: str, pool_map) -> dict:
    env_id, seeds, value, need_reached, need_final = TARGETS[name]
    seeds = ARGS.seeds or seeds
    jobs = [(env_id, ARGS.first_seed + i, ARGS.set) for i in range(seeds)]
    results = pool_map(train_one, jobs)
    for r in results:
        print(f"{name} seed {r['seed']}: first step >= {value:g}: {r['threshold_step']}, final eval {r['final_eval']}, "
              f"best {r['best_eval']} ({r['seconds']} s); evals {[round(e[1]) for e in r['evals']]}", flush=True)
    reached = sum(r["threshold_step"] is not None for r in results)
    final_ok = sum(r["final_eval"] is not None and r["final_eval"] >= value for r in results)
    return {"env_id": env_id, "seeds": seeds, "criterion": value, "reached": reached, "final_ok": final_ok,
            "met": reached >= min(need_reached, seeds) and final_ok >= min(need_final, seeds),
            "threshold_steps": [r["threshold_step"] for r in results],
            "final_evals": [r["final_eval"] for r in results], "best_evals": [r["best_eval"] for r in results],
            "minutes": round(sum(r["seconds"] for r in results) / 60, 1)}


def run_atari() -> dict:
    from apps.dqn import parse_set
    from rl.dqn import DQN
    from rl.presets import resolve_config

    overrides = {"total_steps": ARGS.atari_steps, "learning_starts": min(1000, ARGS.atari_steps // 2),
                 "eval_every": 0}
    overrides.update(parse_set(ARGS.set))
    config, _ = resolve_config("ALE/Pong-v5", overrides=overrides)
    run = DQN(config)
    t = time.perf_counter()
    run.learn()
    seconds = time.perf_counter() - t
    buffer = getattr(run.replay, "buffer", run.replay)
    figures = {"env_id": "ALE/Pong-v5", "steps": run.num_steps, "updates": run.agent.num_updates,
               "steps_per_s": round(run.num_steps / seconds, 1), "replay_frames": buffer.capacity,
               "replay_gb_when_full": round(buffer.nbytes / 1e9, 2), "rss_gb_after_run": round(rss_gb(), 2)}
    if ARGS.atari_fill:  # write every slot once so that all of the replay's pages are resident
        frame = np.full(buffer.frame_shape, 7, np.uint8)
        for row in range(buffer.rows):
            buffer.frames[row] = frame
        figures["rss_gb_full_replay"] = round(rss_gb(), 2)
    run.close()
    print(f"atari: {figures}", flush=True)
    return figures


def main() -> None:
    names = [n.strip() for n in ARGS.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS and n != "atari"]
    if unknown:
        raise SystemExit(f"unknown targets {unknown}; choose from {', '.join(list(TARGETS) + ['atari'])}")
    figures = {"bench": "dqn_targets", "threads": ARGS.threads, "set": ARGS.set}
    if ARGS.jobs > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(ARGS.jobs)
        pool_map = pool.map
    else:
        pool, pool_map = None, lambda f, jobs: [f(j) for j in jobs]
    try:
        for name in names:
            figures[name] = run_atari() if name == "atari" else run_target(name, pool_map)
    finally:
        if pool is not None:
            pool.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
