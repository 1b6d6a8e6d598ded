"""``zerodl finetune`` with tiny budgets: a stand-in checkpoint, generated image folders and IDX files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apps.cli import main
from core.serialization import save_weights
from tests.apps.test_classify_app import write_tiny_fashion
from vision.models.efficientnet_lite import efficientnet_lite0

ROOT = Path(__file__).resolve().parents[2]


def zerodl(*args, timeout=300):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "apps", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random EfficientNet-Lite0 with ImageNet's 1000 outputs standing in for the real checkpoint."""
    path = tmp_path_factory.mktemp("weights") / "lite0.npz"
    save_weights(efficientnet_lite0(rng=7), path)
    return str(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """train/ and test/ folders of three colour classes (a red, green or blue bar on noise)."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 3)):
        for k, name in enumerate(("red", "green", "blue")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (40, 36, 3)).astype(np.uint8)
                img[10:30, :, k] = 230
                Image.fromarray(img).save(root / split / name / f"{i}.png")
    return root


def test_cached_run_writes_the_run_folder_and_a_usable_model(weights, folder, tmp_path):
    run = tmp_path / "cached"
    out = zerodl("finetune", "--data", str(folder), "--weights", weights, "--img-size", "32", "--cache-features",
                 "--epochs", "3", "--batch-size", "6", "--val-fraction", "0", "--run-dir", str(run),
                 "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout and "training classifier (3,843 parameters)" in out.stdout
    for name in ("config.json", "metrics.csv", "learning_curves.png", "features.npz", "model.npz",
                 "confusion_matrix.png", "misclassified.png", "per_class.txt", "results.json",
                 "checkpoints/last.npz"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert results["train_images"] == 18 and results["test_images"] == 9 and results["epochs"] == 3
    assert set(results["per_class_accuracy"]) == {"red", "green", "blue"}
    # model.npz carries its preprocessing: `zerodl classify predict` can use it directly
    image = str(folder / "test" / "green" / "0.png")
    pred = zerodl("classify", "predict", "--checkpoint", str(run / "model.npz"), image, "--top-k", "3")
    assert pred.returncode == 0, pred.stderr
    assert all(name in pred.stdout for name in ("red", "green", "blue"))


def test_uncached_partial_fine_tuning_and_resume(weights, folder, tmp_path):
    run = tmp_path / "last2"
    args = ["finetune", "--data", str(folder), "--weights", weights, "--img-size", "32", "--freeze", "last:2",
            "--epochs", "1", "--batch-size", "9", "--val-fraction", "0", "--run-dir", str(run), "--no-progress"]
    assert main(args) == 0
    assert "training stage7, head, classifier" in json.loads((run / "results.json").read_text())["freeze"]
    config = json.loads((run / "config.json").read_text())
    config["config"]["epochs"] = 2  # as if the first run had been stopped after its first of two epochs
    (run / "config.json").write_text(json.dumps(config))
    assert main(["finetune", "--resume", "--run-dir", str(run), "--no-progress"]) == 0
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + epochs 1 and 2


@pytest.mark.parametrize("extra, message", [
    (["--cache-features", "--freeze", "none"], "needs freeze='backbone'"),
    (["--freeze", "last:99"], "has only 9 stages"),
    (["--data", "/no/such/dataset"], "unknown dataset"),
    (["--resume"], "--resume needs --run-dir"),
])
def test_bad_input_is_reported(weights, folder, extra, message, capsys):
    args = ["finetune", "--data", str(folder), "--weights", weights, "--img-size", "32", "--epochs", "1",
            "--val-fraction", "0", "--no-progress", "--run-dir", "/tmp/zerodl-finetune-bad-input", *extra]
    if "--resume" in extra:
        args.remove("--run-dir"), args.remove("/tmp/zerodl-finetune-bad-input")
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_missing_weights_file_is_reported(folder, capsys):
    assert main(["finetune", "--data", str(folder), "--weights", "/no/such/file.pth", "--no-progress"]) == 2
    assert "no file at" in capsys.readouterr().err


def test_demo_with_tiny_budgets(weights, tmp_path):
    data_dir = write_tiny_fashion(tmp_path / "fashion", n_train=200, n_test=40)
    run = tmp_path / "demo"
    out = zerodl("finetune", "--demo", "--weights", weights, "--data-dir", str(data_dir), "--demo-budgets", "2",
                 "3", "--demo-steps", "2", "--img-size", "32", "--test-limit", "20", "--run-dir", str(run),
                 "--no-progress")
    assert out.returncode == 0, out.stderr
    table = (run / "results.md").read_text()
    assert "| method | 2/class | 3/class |" in table
    for method in ("pretrained, frozen + cached", "pretrained, fine-tuned", "EfficientNet-Lite0 from scratch",
                   "SimpleConvNet from scratch"):
        assert method in table
    results = json.loads((run / "results.json").read_text())
    assert len(results["rows"]) == 8 and all(0.0 <= r["test_accuracy"] <= 1.0 for r in results["rows"])
    assert (run / "fewshot.png").stat().st_size > 10_000
    assert (run / "3-per-class" / "pretrained-frozen-cached" / "features.npz").is_file()
