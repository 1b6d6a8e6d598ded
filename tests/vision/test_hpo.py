"""Validation-set hyper-parameter search: sampling, trials, parallel workers, outputs and bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vision.classification import TrainConfig
from vision.datasets import ImageDataset
from vision.hpo import (SearchSpace, format_trials, optuna_available, random_search, run_trial, sample_log_uniform,
                        save_search)


def tiny_data(n_train=120, n_test=40, size=8, seed=0):
    """Two easy classes: a bright left or right half, with noise."""
    def make(n, s):
        rng = np.random.default_rng(s)
        y = np.arange(n) % 2
        x = rng.integers(0, 60, (n, size, size, 1))
        x[y == 0, :, : size // 2] += 150
        x[y == 1, :, size // 2:] += 150
        return ImageDataset(x.clip(0, 255).astype(np.uint8), y, ["left", "right"], name="halves")
    return make(n_train, seed), make(n_test, seed + 1)


def tiny_config(**kw):
    base = dict(dataset="halves", model="simpleconvnet", model_kwargs={"filters": 2, "hidden": 8, "kernel_size": 3},
                epochs=2, batch_size=20, optimizer="sgd", val_fraction=0.25, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_log_uniform_sampling_covers_decades_evenly():
    x = sample_log_uniform(np.random.default_rng(0), 1e-6, 1e-2, 20000)
    assert x.min() >= 1e-6 and x.max() <= 1e-2
    decades = np.histogram(np.log10(x), bins=4, range=(-6, -2))[0]
    assert decades.min() > 0.23 * len(x)  # ~25% per decade, unlike uniform sampling (90% in the top decade)


def test_trial_reports_validation_figures_and_survives_divergence():
    data = tiny_data()
    row = run_trial(tiny_config(), 3, lr=0.1, weight_decay=1e-4, data=data)
    assert row["trial"] == 3 and row["status"] == "ok" and row["epochs"] == 2
    assert 0 <= row["val_accuracy"] <= 1 and math.isfinite(row["val_loss"])
    bad = run_trial(tiny_config(), 4, lr=1e30, weight_decay=0.0, data=data)
    assert bad["status"].startswith("diverged") and math.isnan(bad["val_accuracy"])


def test_random_search_is_seeded_and_picks_the_best_validation_accuracy(tmp_path):
    data = tiny_data()
    space = SearchSpace(lr=(1e-3, 0.3), weight_decay=(1e-6, 1e-3))
    seen = []
    result = random_search(tiny_config(), trials=4, space=space, seed=1, data=data, callback=seen.append)
    again = random_search(tiny_config(), trials=4, space=space, seed=1, data=data)
    assert [t["lr"] for t in result.trials] == [t["lr"] for t in again.trials]
    assert [t["val_accuracy"] for t in result.trials] == [t["val_accuracy"] for t in again.trials]
    assert len(seen) == 4 and [t["trial"] for t in result.trials] == [0, 1, 2, 3]
    assert all(1e-3 <= t["lr"] <= 0.3 and 1e-6 <= t["weight_decay"] <= 1e-3 for t in result.trials)
    assert result.best["val_accuracy"] == max(t["val_accuracy"] for t in result.trials)
    table = format_trials(result)
    assert table.splitlines()[1].split()[0] == str(result.best["trial"])  # best first
    paths = save_search(result, tmp_path, tiny_config())
    best = json.loads(paths["best"].read_text())
    assert best["config"]["lr"] == result.best["lr"] and best["config"]["model"] == "simpleconvnet"
    assert paths["trials"].read_text().startswith("trial,lr,weight_decay,val_accuracy")
    assert paths["scatter"].stat().st_size > 1000


def test_parallel_workers_give_the_same_trials_as_one_process():
    data = tiny_data()
    one = random_search(tiny_config(), trials=3, seed=2, data=data, workers=1)
    two = random_search(tiny_config(), trials=3, seed=2, data=data, workers=2)
    assert [(t["lr"], t["val_accuracy"]) for t in one.trials] == [(t["lr"], t["val_accuracy"]) for t in two.trials]


@pytest.mark.parametrize("kwargs, match", [
    ({"trials": 0}, "trials must be a positive int"),
    ({"workers": 0}, "workers must be a positive int"),
    ({"sampler": "grid"}, "sampler must be 'random' or 'tpe'"),
])
def test_bad_search_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_search(tiny_config(), data=tiny_data(), **kwargs)


def test_search_needs_a_validation_split_and_valid_ranges():
    with pytest.raises(ValueError, match="val_fraction > 0"):
        random_search(tiny_config(val_fraction=0.0), trials=1, data=tiny_data())
    with pytest.raises(ValueError, match="lr range must satisfy 0 < low <= high"):
        SearchSpace(lr=(0.1, 0.01))


def test_tpe_sampler_needs_optuna_or_runs_with_it():
    if not optuna_available():
        with pytest.raises(ValueError, match="needs Optuna"):
            random_search(tiny_config(), trials=2, sampler="tpe", data=tiny_data())
        return
    result = random_search(tiny_config(), trials=3, sampler="tpe", data=tiny_data(), seed=0)
    assert len(result.trials) == 3 and result.sampler == "tpe" and result.best is not None
