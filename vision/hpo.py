"""Hyper-parameter search on the validation split: the book's random search (ch. 6.5) and Optuna's TPE.

The book's recipe: sample the learning rate and the weight-decay strength
log-uniformly (``10 ** uniform(a, b)``), train each configuration for a few
epochs, compare them on *validation* data only (the test set is kept for
the final figure), then narrow the ranges around the best trials. With
``sampler="tpe"`` and Optuna installed, a Tree-structured Parzen Estimator
(Bergstra et al. 2011) proposes the next configurations from the results so
far instead. Trials can run in parallel processes (``workers``).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .classification import TrainConfig, load_data, train

__all__ = ["SearchSpace", "HPOResult", "optuna_available", "sample_log_uniform", "run_trial", "random_search",
           "format_trials", "save_search"]


@dataclass(frozen=True)
class SearchSpace:
    """Log-uniform ranges ``(low, high)`` for the learning rate and the weight decay."""

    lr: tuple = (1e-4, 1e-1)
    weight_decay: tuple = (1e-6, 1e-2)

    def __post_init__(self):
        for name in ("lr", "weight_decay"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"SearchSpace: {name} range must satisfy 0 < low <= high, got {(lo, hi)!r}")


def optuna_available() -> bool:
    """True when ``import optuna`` works (the optional Bayesian-optimisation extra)."""
    try:
        import optuna  # noqa: F401
    except Exception:
        return False
    return True


def sample_log_uniform(rng: np.random.Generator, low: float, high: float, size=None):
    """``10 ** uniform(log10(low), log10(high))``: every decade is equally likely (the book's sampling)."""
    return 10.0 ** rng.uniform(math.log10(low), math.log10(high), size)


# Data shared with forked worker processes (set before the pool starts, read in the workers).
_SHARED_DATA = None


def run_trial(config: TrainConfig, number: int, lr: float, weight_decay: float, data=None) -> dict:
    """Train one configuration; returns a row with its hyper-parameters and validation figures.

    A trial that diverges (non-finite loss) or fails is reported with
    ``status`` and NaN metrics instead of stopping the search.
    """
    cfg = replace(config, lr=float(lr), weight_decay=float(weight_decay))
    row = {"trial": number, "lr": float(lr), "weight_decay": float(weight_decay), "status": "ok"}
    start = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging trial is reported, not warned about
            result = train(cfg, progress=False, data=data if data is not None else _SHARED_DATA)
        last = result.history[-1]
        row.update(val_accuracy=float(last.get("val_accuracy", math.nan)),
                   val_loss=float(last.get("val_loss", math.nan)),
                   best_val_accuracy=max(float(h.get("val_accuracy", math.nan)) for h in result.history),
                   train_accuracy=float(last.get("accuracy", math.nan)), epochs=len(result.history))
    except FloatingPointError as e:
        row.update(status=f"diverged: {e}"[:200], val_accuracy=math.nan, val_loss=math.nan,
                   best_val_accuracy=math.nan, train_accuracy=math.nan, epochs=0)
    row["seconds"] = time.perf_counter() - start
    return row


def _trial_worker(args):
    config, number, lr, wd = args
    return run_trial(config, number, lr, wd)


@dataclass
class HPOResult:
    """All trial rows (in trial order) and the best one (highest final validation accuracy)."""

    trials: list
    best: dict | None
    sampler: str
    space: SearchSpace


def _best(trials):
    ok = [t for t in trials if math.isfinite(t.get("val_accuracy", math.nan))]
    return max(ok, key=lambda t: (t["val_accuracy"], -t["val_loss"])) if ok else None


def random_search(config: TrainConfig, trials: int = 20, space: SearchSpace = SearchSpace(), seed: int = 0,
                  workers: int = 1, sampler: str = "random", callback: Callable | None = None,
                  data=None) -> HPOResult:
    """Search ``lr`` and ``weight_decay`` for ``config`` (its other fields stay fixed).

    Args:
        config: the training recipe of every trial (few ``epochs``; ``val_fraction > 0``).
        trials: number of configurations to train.
        space: the log-uniform ranges.
        seed: seeds the sampler (trials themselves train with ``config.seed``).
        workers: trials run in this many processes at once (1: in this process).
        sampler: ``"random"`` (the book's) or ``"tpe"`` (Optuna; ValueError when not installed).
        callback: ``callback(row)`` after each finished trial (progress reporting).
        data: ``(train, test)`` datasets already loaded (default: ``load_data(config)``).

    Returns an ``HPOResult``; ``best`` has the highest final validation accuracy.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"random_search: trials must be a positive int, got {trials!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"random_search: workers must be a positive int, got {workers!r}")
    if sampler not in ("random", "tpe"):
        raise ValueError(f"random_search: sampler must be 'random' or 'tpe', got {sampler!r}")
    if sampler == "tpe" and not optuna_available():
        raise ValueError("random_search: sampler='tpe' needs Optuna (pip install optuna); use sampler='random'")
    if not config.val_fraction > 0:
        raise ValueError("random_search: trials are compared on a validation split; set config.val_fraction > 0 "
                         f"(got {config.val_fraction})")
    global _SHARED_DATA
    data = data if data is not None else load_data(config)
    rows: list = []

    def finished(row):
        rows.append(row)
        if callback is not None:
            callback(row)

    pool = None
    if workers > 1:
        # Forked workers inherit the loaded datasets instead of each reading the files again.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        _SHARED_DATA = data
        pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        if sampler == "random":
            rng = np.random.default_rng(seed)
            params = [(float(sample_log_uniform(rng, *space.lr)), float(sample_log_uniform(rng, *space.weight_decay)))
                      for _ in range(trials)]
            if pool is None:
                for i, (lr, wd) in enumerate(params):
                    finished(run_trial(config, i, lr, wd, data))
            else:
                futures = [pool.submit(_trial_worker, (config, i, lr, wd)) for i, (lr, wd) in enumerate(params)]
                for fut in cf.as_completed(futures):
                    finished(fut.result())
        else:
            _tpe_search(config, trials, space, seed, workers, pool, data, finished)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        _SHARED_DATA = None
    rows.sort(key=lambda r: r["trial"])
    return HPOResult(rows, _best(rows), sampler, space)


def _tpe_search(config, trials, space, seed, workers, pool, data, finished):
    """Optuna's ask/tell loop: ``workers`` trials are proposed, trained in parallel, then reported back."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    done = 0
    while done < trials:
        batch = []
        for _ in range(min(workers, trials - done)):
            t = study.ask()
            lr = t.suggest_float("lr", *space.lr, log=True)
            wd = t.suggest_float("weight_decay", *space.weight_decay, log=True)
            batch.append((t, lr, wd))
        if pool is None:
            results = [run_trial(config, t.number, lr, wd, data) for t, lr, wd in batch]
        else:
            results = list(pool.map(_trial_worker, [(config, t.number, lr, wd) for t, lr, wd in batch]))
        for (t, _, _), row in zip(batch, results):
            value = row["val_accuracy"]
            if math.isfinite(value):
                study.tell(t, value)
            else:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            finished(row)
        done += len(batch)


_COLUMNS = ("trial", "lr", "weight_decay", "val_accuracy", "best_val_accuracy", "val_loss", "train_accuracy",
            "epochs", "seconds", "status")


def format_trials(result: HPOResult, top: int | None = None) -> str:
    """The trials as a text table sorted by validation accuracy (best first)."""
    def rank(r):  # the order _best uses: accuracy, then lower loss; failed trials last
        return (-r["val_accuracy"], r["val_loss"]) if math.isfinite(r["val_accuracy"]) else (math.inf, math.inf)

    rows = sorted(result.trials, key=rank)
    if top is not None:
        rows = rows[:top]
    lines = [f"{'trial':>5}  {'lr':>10}  {'weight_decay':>12}  {'val_acc':>8}  {'val_loss':>8}  {'train_acc':>9}  "
             f"{'sec':>6}  status"]
    for r in rows:
        lines.append(f"{r['trial']:5d}  {r['lr']:10.3e}  {r['weight_decay']:12.3e}  {100 * r['val_accuracy']:7.2f}%  "
                     f"{r['val_loss']:8.4f}  {100 * r['train_accuracy']:8.2f}%  {r['seconds']:6.1f}  {r['status']}")
    return "\n".join(lines)


def save_search(result: HPOResult, out_dir, config: TrainConfig) -> dict:
    """Write ``trials.csv``, ``best.json`` (the best configuration, ready for ``classify train``) and ``scatter.png``.

    Returns ``{"trials": path, "best": path, "scatter": path}``.
    """
    from core.plots import write_metrics_csv
    from core.serialization import atomic_write_bytes

    from .plots import plot_hpo_scatter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trials": out / "trials.csv", "best": out / "best.json", "scatter": out / "scatter.png"}
    write_metrics_csv(paths["trials"], [{k: r.get(k) for k in _COLUMNS} for r in result.trials])
    best = result.best
    payload = {
        "sampler": result.sampler,
        "space": {"lr": list(result.space.lr), "weight_decay": list(result.space.weight_decay)},
        "trials": len(result.trials),
        "best_trial": None if best is None else {k: best.get(k) for k in _COLUMNS},
        "config": None if best is None else replace(config, lr=best["lr"], weight_decay=best["weight_decay"]).to_dict(),
    }
    atomic_write_bytes(paths["best"], json.dumps(payload, indent=2, allow_nan=True).encode())
    plot_hpo_scatter(result.trials, paths["scatter"], title=f"{result.sampler} search: validation accuracy")
    return paths
