"""Confusion matrix and per-class metrics, ensembles, and the classifier figures."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from vision.ensemble import average_probabilities, ensemble_report, format_ensemble_report
from vision.metrics import (classification_report, confusion_matrix, format_class_table, per_class_accuracy,
                            top_k_accuracy)
from vision.plots import filter_grid, plot_confusion_matrix, plot_filters, plot_hpo_scatter, plot_misclassified


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    cm = confusion_matrix(t, p, 4)
    expected = np.zeros((4, 4), dtype=np.int64)
    for a, b in zip(t, p):
        expected[a, b] += 1
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    assert confusion_matrix([0, 2], [2, 2]).shape == (3, 3)  # K inferred from the largest label


def test_per_class_accuracy_and_report():
    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    acc = per_class_accuracy(cm)
    np.testing.assert_allclose(acc[:2], [0.8, 0.9])
    assert math.isnan(acc[2])  # a class without samples
    rep = classification_report(cm, ["a", "b", "c"])
    np.testing.assert_allclose(rep.precision[:2], [8 / 9, 9 / 11])
    np.testing.assert_allclose(rep.f1[0], 2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert rep.overall == pytest.approx(17 / 20)
    table = format_class_table(rep)
    assert "a" in table and "80.00%" in table and "overall" in table and "85.00%" in table
    assert table.splitlines()[3].split()[-1] == "-"  # undefined F1 shown as "-", not "nan%"


@pytest.mark.parametrize("call, error, match", [
    (lambda: confusion_matrix([0, 1], [0], 2), ValueError, "same shape"),
    (lambda: confusion_matrix([0, 5], [0, 1], 3), ValueError, "outside \\[0, 3\\).*5"),
    (lambda: confusion_matrix([0, -1], [0, 1], 3), ValueError, "outside"),
    (lambda: confusion_matrix([0.5, 1], [0, 1], 3), TypeError, "integer class indices"),
    (lambda: per_class_accuracy(np.zeros((2, 3))), ValueError, "square"),
    (lambda: classification_report(np.eye(3), ["a"]), ValueError, "1 class names for a 3x3"),
    (lambda: top_k_accuracy(np.zeros((2, 3)), [0, 1], k=4), ValueError, "k must be in \\[1, 3\\]"),
])
def test_metric_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([2, 0, 0])
    assert top_k_accuracy(scores, y, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, y, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, y, 3) == 1.0


def test_ensemble_averages_and_reports_the_gain():
    labels = np.array([0, 1, 2, 0])
    a = np.array([[.6, .4, 0], [.6, .4, 0], [0, .1, .9], [.9, .1, 0]])  # wrong on sample 1
    b = np.array([[.4, .6, 0], [0, .9, .1], [0, .2, .8], [.8, .2, 0]])  # wrong on sample 0
    c = np.array([[.9, .1, 0], [.1, .8, .1], [.5, .4, .1], [.6, .4, 0]])  # wrong on sample 2
    rep = ensemble_report([a, b, c], labels, ["a", "b", "c"])
    assert rep.member_accuracy == [0.75, 0.75, 0.75]
    assert rep.ensemble_accuracy == 1.0 and rep.gain == pytest.approx(0.25) and rep.best_member == "a"
    np.testing.assert_allclose(average_probabilities([a, b]), (a + b) / 2)
    np.testing.assert_allclose(average_probabilities([a, b], weights=[3, 1]), 0.75 * a + 0.25 * b)
    text = format_ensemble_report(rep)
    assert "ensemble" in text and "+25.00 points" in text
    with pytest.raises(ValueError, match="member 1 has probabilities of shape \\(4, 2\\)"):
        ensemble_report([a, b[:, :2]], labels)
    with pytest.raises(ValueError, match="weights"):
        average_probabilities([a, b], weights=[1, -1])


def _png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return im.size


def test_confusion_matrix_and_misclassified_figures(tmp_path):
    rng = np.random.default_rng(0)
    classes = [f"class{i}" for i in range(5)]
    t, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    w, h = _png(plot_confusion_matrix(confusion_matrix(t, p, 5), classes, tmp_path / "cm.png"))
    assert w > 300 and h > 300
    images = rng.integers(0, 256, (200, 12, 12, 1), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(5), size=200)
    _png(plot_misclassified(images, t, p, classes, tmp_path / "wrong.png", probs=probs, max_images=12))
    _png(plot_misclassified(images, t, t, classes, tmp_path / "none.png"))  # nothing wrong: still a figure
    rgb = rng.integers(0, 256, (200, 3, 8, 8)).astype(np.float32) / 255  # (N, C, H, W) floats work too
    _png(plot_misclassified(rgb, t, p, classes, tmp_path / "rgb.png"))
    with pytest.raises(ValueError, match="3 class names for a 5x5"):
        plot_confusion_matrix(np.eye(5), classes[:3], tmp_path / "x.png")
    with pytest.raises(ValueError, match="must all match"):
        plot_misclassified(images[:10], t, p, classes, tmp_path / "x.png")


def test_filter_grid_tiles_each_filter_scaled_to_unit_range():
    w = np.arange(4 * 1 * 2 * 2, dtype=np.float64).reshape(4, 1, 2, 2)
    grid = filter_grid(w, columns=2, pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1)
    np.testing.assert_allclose(grid[1:3, 1:3], [[0, 1 / 3], [2 / 3, 1]])  # filter 0, min-max scaled
    np.testing.assert_allclose(grid[4:6, 4:6], [[0, 1 / 3], [2 / 3, 1]])  # filter 3
    assert (grid[0] == 1).all() and (grid[:, 3] == 1).all()  # white gaps
    rgb = filter_grid(np.random.default_rng(0).standard_normal((5, 3, 3, 3)))
    assert rgb.shape == (2 * 4 + 1, 3 * 4 + 1, 3) and rgb.min() >= 0 and rgb.max() <= 1


def test_filters_and_hpo_scatter_figures(tmp_path):
    _png(plot_filters(np.random.default_rng(0).standard_normal((30, 1, 5, 5)), tmp_path / "f.png"))
    trials = [{"lr": 10 ** -i, "weight_decay": 10 ** -(i + 3), "val_accuracy": 0.5 + i / 10} for i in range(4)]
    trials.append({"lr": 1.0, "weight_decay": 1e-3, "val_accuracy": float("nan")})  # a diverged trial
    _png(plot_hpo_scatter(trials, tmp_path / "s.png"))
    with pytest.raises(ValueError, match="no trials"):
        plot_hpo_scatter([], tmp_path / "s.png")
    with pytest.raises(ValueError, match="lacks 'lr'"):
        plot_hpo_scatter([{"weight_decay": 1}], tmp_path / "s.png")
    with pytest.raises(ValueError, match="conv weights"):
        filter_grid(np.zeros((3, 3)))
