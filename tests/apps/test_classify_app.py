"""``zerodl classify`` smoke runs with tiny budgets on generated IDX files, and its bad-input messages."""
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
from vision.classification import ClassifierSpec, save_classifier
from vision.datasets import write_idx

ROOT = Path(__file__).resolve().parents[2]


def make_images(n, seed, size=12, num_classes=10):
    """Each class lights its own 2x2 cell of a 4x4 grid... (learnable in a couple of epochs)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = rng.integers(0, 50, (n, size, size)).astype(np.int64)
    cell = size // 4
    for k in range(num_classes):
        r, c = divmod(k, 4)
        x[y == k, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] += 200
    return x.clip(0, 255).astype(np.uint8), y.astype(np.uint8)


def write_tiny_fashion(folder: Path, n_train=300, n_test=100, labels_hook=None) -> Path:
    """IDX files named like Fashion-MNIST's, with tiny generated 12x12 images, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = make_images(n, seed)
        if labels_hook is not None:
            y = labels_hook(y)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", y)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_fashion(tmp_path_factory.mktemp("fashion"))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "simple"
    code = main(["classify", "train", "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--model",
                 "simpleconvnet", "--model-args", '{"filters": 6, "hidden": 32}', "--epochs", "3",
                 "--batch-size", "20", "--lr", "0.01", "--run-dir", str(run), "--no-progress"])
    assert code == 0
    return run


def test_train_writes_the_whole_run_folder(trained):
    for name in ("config.json", "metrics.csv", "learning_curves.png", "model.npz", "confusion_matrix.png",
                 "misclassified.png", "filters.png", "per_class.txt", "results.json", "checkpoints/last.npz",
                 "checkpoints/best.npz"):
        assert (trained / name).is_file(), name
    results = json.loads((trained / "results.json").read_text())
    assert results["test_accuracy"] > 0.5  # chance is 0.1
    assert set(results["per_class_accuracy"]) == {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                  "Shirt", "Sneaker", "Bag", "Ankle boot"}
    config = json.loads((trained / "config.json").read_text())
    assert config["config"]["model_kwargs"] == {"filters": 6, "hidden": 32}
    assert config["spec"]["input_size"] == [12, 12]
    assert len((trained / "metrics.csv").read_text().strip().splitlines()) == 4  # header + 3 epochs


def test_eval_reports_accuracy_and_float16_change(trained, data_dir, capsys):
    assert main(["classify", "eval", "--checkpoint", str(trained), "--data-dir", str(data_dir), "--float16"]) == 0
    out = capsys.readouterr().out
    assert "simpleconvnet on fashion-mnist test: accuracy" in out
    assert "float16: accuracy" in out and "same prediction for" in out
    report = json.loads((trained / "eval-fashion-mnist-test" / "results.json").read_text())
    assert abs(report["float16_change_points"]) < 5
    # A Trainer checkpoint works too: the architecture comes from the run's config.json.
    assert main(["classify", "eval", "--checkpoint", str(trained / "checkpoints" / "best.npz"),
                 "--data-dir", str(data_dir)]) == 0


def test_predict_prints_top_k_with_probabilities(trained, tmp_path, capsys):
    x, y = make_images(3, 5)
    paths = []
    for i, img in enumerate(x):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(img).resize((24, 24)).save(p)  # another size: predict resizes to the model's
        paths.append(str(p))
    assert main(["classify", "predict", "--checkpoint", str(trained / "model.npz"), *paths, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        path, ranked = line.split(": ", 1)
        entries = ranked.split(", ")
        assert len(entries) == 2 and all(e.endswith("%") for e in entries)


def test_resume_continues_an_interrupted_run(data_dir, tmp_path):
    run = tmp_path / "resumed"
    args = ["classify", "train", "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--model",
            "simpleconvnet", "--model-args", '{"filters": 4, "hidden": 16}', "--train-limit", "100",
            "--run-dir", str(run), "--no-progress", "--augment", "crop-flip",
            "--optimizer", "momentum", "--lr", "0.02", "--schedule", "cosine"]
    assert main(args + ["--epochs", "1"]) == 0
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_ensemble_reports_members_and_gain(trained, data_dir, tmp_path, capsys):
    other = tmp_path / "lenet"
    assert main(["classify", "train", "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--model",
                 "lenet5", "--epochs", "2", "--run-dir", str(other), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["classify", "ensemble", "--checkpoints", str(trained), str(other), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "(simpleconvnet)" in out and "(lenet5)" in out and "gain over the best member" in out


def test_summary_lists_models_and_prints_a_table(capsys):
    assert main(["classify", "summary", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "deepconvnet" in names and "resnet18" in names and "vgg16_bn" in names
    assert main(["classify", "summary", "--model", "resnet20", "--input-size", "28", "28"]) == 0
    out = capsys.readouterr().out
    assert "layer3.2.conv2" in out and "total parameters: 269,434" in out


def _error_of(argv, capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_unknown_dataset_and_model_names_list_the_valid_ones(data_dir, capsys):
    err = _error_of(["classify", "train", "--dataset", "imagenet-tiny", "--no-progress"], capsys)
    assert "unknown dataset 'imagenet-tiny'" in err and "fashion-mnist" in err and "cifar10" in err
    err = _error_of(["classify", "train", "--data-dir", str(data_dir), "--model", "resnet9000", "--no-progress",
                     "--epochs", "1"], capsys)
    assert "unknown model 'resnet9000'" in err and "deepconvnet" in err


def test_checkpoint_of_another_architecture_names_the_differing_keys(trained, data_dir, tmp_path, capsys):
    # Resuming a SimpleConvNet run as a DeepConvNet.
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    err = _error_of(["classify", "train", "--data-dir", str(data_dir), "--model", "deepconvnet", "--epochs", "4",
                     "--run-dir", str(run), "--resume", "--no-progress"], capsys)
    assert "missing keys" in err and "conv2.weight" in err  # DeepConvNet layers the checkpoint lacks
    assert "fc1.weight: checkpoint (32, 96) vs model (50, 256)" in err  # and the shapes that differ
    # A weights file whose description says another class count / architecture.
    from vision.classification import load_classifier

    model, spec = load_classifier(trained)
    wrong = ClassifierSpec(**{**spec.to_dict(), "num_classes": 5, "input_size": (12, 12)})
    save_classifier(tmp_path / "wrong.npz", model, wrong)
    err = _error_of(["classify", "eval", "--checkpoint", str(tmp_path / "wrong.npz"), "--data-dir", str(data_dir)],
                    capsys)
    assert "fc2.weight: checkpoint (10, 32) vs model (5, 32)" in err


def test_labels_outside_the_class_range_are_refused(tmp_path, capsys):
    folder = write_tiny_fashion(tmp_path / "bad", n_train=60, n_test=20,
                                labels_hook=lambda y: np.where(np.arange(len(y)) == 3, 12, y).astype(np.uint8))
    err = _error_of(["classify", "train", "--data-dir", str(folder), "--epochs", "1", "--no-progress"], capsys)
    assert "12" in err and "label" in err.lower()


def test_bad_training_options_are_reported(data_dir, capsys):
    err = _error_of(["classify", "train", "--data-dir", str(data_dir), "--epochs", "0", "--no-progress"], capsys)
    assert "epochs must be a positive int, got 0" in err
    err = _error_of(["classify", "train", "--data-dir", str(data_dir), "--augment", "no-such-preset"], capsys)
    assert "neither a preset" in err and "crop-flip" in err
    err = _error_of(["classify", "train", "--data-dir", str(data_dir), "--model-args", "[1]"], capsys)
    assert "--model-args must be a JSON object" in err


def test_cli_entry_point_runs_as_a_subprocess(data_dir, tmp_path):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "apps.cli", "classify", "train", "--data-dir", str(data_dir),
                           "--epochs", "1", "--train-limit", "100", "--run-dir", str(tmp_path / "r"),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and (tmp_path / "r" / "model.npz").is_file()


def _write_folder(root: Path, sizes=None, empty_class=False) -> Path:
    """``root/{train,test}/{circle,bar}/*.png`` grayscale images (a disc or a bar), 10x10 unless ``sizes``."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 6)):
        for label, cls in enumerate(("bar", "circle")):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            if empty_class and split == "train" and cls == "circle":
                continue
            for i in range(n):
                h, w = (sizes or {}).get((split, cls, i), (10, 10))
                img = rng.integers(0, 40, (h, w)).astype(np.uint8)
                if label == 0:
                    img[h // 2 - 1:h // 2 + 1, :] = 230
                else:
                    yy, xx = np.mgrid[:h, :w]
                    img[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2] = 230
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


def test_image_folder_dataset_trains_and_evaluates(tmp_path, capsys):
    root = _write_folder(tmp_path / "shapes")
    run = tmp_path / "run"
    assert main(["classify", "train", "--dataset", str(root), "--image-mode", "L", "--model", "simpleconvnet",
                 "--model-args", '{"filters": 4, "hidden": 8, "kernel_size": 3}', "--epochs", "3",
                 "--batch-size", "8", "--val-fraction", "0.25", "--run-dir", str(run), "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["spec"]["classes"] == ["bar", "circle"]
    capsys.readouterr()
    assert main(["classify", "eval", "--checkpoint", str(run)]) == 0
    assert f"on {root} test: accuracy" in capsys.readouterr().out


def test_image_folder_mixed_sizes_and_empty_class_are_refused(tmp_path, capsys):
    mixed = _write_folder(tmp_path / "mixed", sizes={("train", "bar", 3): (12, 9)})
    err = _error_of(["classify", "train", "--dataset", str(mixed), "--epochs", "1", "--no-progress"], capsys)
    assert "different sizes" in err and "3.png" in err
    # --image-size resizes them all, after which training works.
    assert main(["classify", "train", "--dataset", str(mixed), "--image-size", "10", "10", "--image-mode", "L",
                 "--epochs", "1", "--model-args", '{"filters": 2, "hidden": 4, "kernel_size": 3}',
                 "--run-dir", str(tmp_path / "ok"), "--no-progress"]) == 0
    empty = _write_folder(tmp_path / "empty", empty_class=True)
    err = _error_of(["classify", "train", "--dataset", str(empty), "--epochs", "1", "--no-progress"], capsys)
    assert "circle" in err and "holds no images" in err
    err = _error_of(["classify", "train", "--dataset", str(tmp_path / "mixed" / "train"), "--epochs", "1",
                     "--no-progress"], capsys)
    assert "train/ and test/" in err


def test_augmentation_pipeline_file_is_used(data_dir, tmp_path):
    from core.augment import Compose, HorizontalFlip, Pad, RandomCrop, save_pipeline

    from vision.classification import make_augmentation

    path = tmp_path / "pipe.json"
    save_pipeline(Compose([Pad(1), RandomCrop(12, 12), HorizontalFlip(p=0.5)]), path)
    pipe = make_augmentation(str(path))
    img = np.arange(144, dtype=np.uint8).reshape(12, 12, 1)
    outs = {pipe(img, rng=np.random.default_rng(s)).tobytes() for s in range(8)}
    assert len(outs) > 1 and pipe(img, rng=np.random.default_rng(0)).shape == (12, 12, 1)
    run = tmp_path / "run"
    assert main(["classify", "train", "--data-dir", str(data_dir), "--augment", str(path), "--epochs", "1",
                 "--train-limit", "60", "--model-args", '{"filters": 2, "hidden": 4}', "--run-dir", str(run),
                 "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["config"]["augment"] == str(path)
    with pytest.raises(ValueError, match="does not exist"):
        make_augmentation(str(tmp_path / "missing.json"))
