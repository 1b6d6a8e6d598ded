"""``zerodl hpo`` smoke runs with a tiny budget on generated IDX files."""
from __future__ import annotations

import csv
import json

import pytest

from apps.cli import main
from tests.apps.test_classify_app import write_tiny_fashion


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_fashion(tmp_path_factory.mktemp("fashion"), n_train=200, n_test=40)


def test_hpo_writes_trials_scatter_and_a_best_config_that_classify_accepts(data_dir, tmp_path, capsys):
    out = tmp_path / "search"
    code = main(["hpo", "--data-dir", str(data_dir), "--trials", "4", "--epochs", "1", "--train-limit", "0",
                 "--batch-size", "20", "--workers", "2", "--out", str(out), "--seed", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("trial ") >= 4 and "best: trial" in printed
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["trial"] for r in rows} == {"0", "1", "2", "3"}
    assert all(1e-3 <= float(r["lr"]) <= 1.0 and 1e-6 <= float(r["weight_decay"]) <= 1e-2 for r in rows)
    best = json.loads((out / "best.json").read_text())
    accs = [float(r["val_accuracy"]) for r in rows]
    assert best["best_trial"]["val_accuracy"] == max(accs)
    assert (out / "scatter.png").stat().st_size > 1000
    # The best configuration trains through `zerodl classify train --config` (options override it).
    run = tmp_path / "run"
    assert main(["classify", "train", "--config", str(out / "best.json"), "--data-dir", str(data_dir),
                 "--epochs", "1", "--run-dir", str(run), "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["lr"] == best["config"]["lr"] and config["epochs"] == 1 and config["optimizer"] == "sgd"
    assert config["model_kwargs"] == {"init": "he_normal"}


@pytest.mark.parametrize("argv, match", [
    (["--trials", "0"], "trials must be a positive int"),
    (["--lr-range", "0.1", "0.001"], "lr range must satisfy"),
    (["--model", "nonet"], "unknown model 'nonet'"),
    (["--dataset", "nodata"], "unknown dataset 'nodata'"),
    (["--model-args", "[2]"], "--model-args must be a JSON object"),
])
def test_hpo_bad_input(data_dir, tmp_path, capsys, argv, match):
    assert main(["hpo", "--data-dir", str(data_dir), "--epochs", "1", "--out", str(tmp_path / "o"), *argv]) == 2
    assert match in capsys.readouterr().err
