"""Metrics CSV round trip and learning-curve PNGs."""
import subprocess
import sys
from pathlib import Path

import pytest

from core.plots import metric_families, plot_learning_curves, read_metrics_csv, write_metrics_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def history(epochs=5):
    rows = []
    for e in range(1, epochs + 1):
        rows.append({"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + 0.08 * e,
                     "val_loss": 1.1 / e + 0.01, "val_accuracy": 0.45 + 0.08 * e, "lr": 0.1 * 0.5 ** e})
    return rows


def assert_png(path: Path, min_width=100):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.width >= min_width and img.height >= 100
        return img.size


def test_csv_round_trip_union_header_and_exact_floats(tmp_path):
    rows = [{"epoch": 1, "loss": 0.1 + 0.2, "note": "warm-up"},
            {"epoch": 2, "loss": 1e-12, "val_loss": None},
            {"epoch": 3, "val_loss": 0.5, "loss": float("inf")}]
    path = tmp_path / "metrics.csv"
    write_metrics_csv(path, rows)
    assert path.read_text().splitlines()[0] == "epoch,loss,note,val_loss"
    back = read_metrics_csv(path)
    assert back[0] == {"epoch": 1, "loss": 0.1 + 0.2, "note": "warm-up", "val_loss": None}
    assert back[1] == {"epoch": 2, "loss": 1e-12, "note": None, "val_loss": None}
    assert back[2]["loss"] == float("inf") and back[2]["val_loss"] == 0.5
    assert type(back[0]["epoch"]) is int


def test_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="no rows to write"):
        write_metrics_csv(tmp_path / "m.csv", [])
    with pytest.raises(TypeError, match="row 1 is a list, expected a dict"):
        write_metrics_csv(tmp_path / "m.csv", [{"a": 1}, [1]])
    assert not (tmp_path / "m.csv").exists()
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv is empty \(no header row\)"):
        read_metrics_csv(tmp_path / "empty.csv")


def test_metric_families_pair_train_and_validation():
    fam = metric_families(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "train_f1", "val_f1"])
    assert list(fam) == ["loss", "accuracy", "lr", "f1"]
    assert fam["loss"] == {"train": "loss", "val": "val_loss"}
    assert fam["lr"] == {"train": "lr", "val": None}
    assert fam["f1"] == {"train": "train_f1", "val": "val_f1"}


def test_plot_from_csv_one_panel_per_family(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    write_metrics_csv(csv_path, history())
    out = plot_learning_curves(csv_path, tmp_path / "curves.png")
    width3, height3 = assert_png(out)
    one = plot_learning_curves(history(), tmp_path / "loss.png", metrics=["loss"])
    width1, height1 = assert_png(one)
    assert width3 > 2 * width1 and height3 == height1  # three panels side by side vs one
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_plot_handles_missing_cells_and_step_axis(tmp_path):
    rows = [{"step": s, "train_loss": 1.0 / s, "val_loss": (0.9 / s if s % 2 == 0 else None)}
            for s in range(1, 9)]
    assert_png(plot_learning_curves(rows, tmp_path / "p.png"))


def test_plot_errors_are_clear(tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("epoch,loss,val_loss\n")
    with pytest.raises(ValueError, match=r"header\.csv has no data rows"):
        plot_learning_curves(header_only, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"metrics \['iou'\] not found in rows; available: loss, accuracy, lr"):
        plot_learning_curves(history(), tmp_path / "x.png", metrics=["loss", "iou"])
    with pytest.raises(ValueError, match=r"column 'loss' row 2 holds 'oops', expected a number"):
        plot_learning_curves([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": "oops"}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no numeric metric columns"):
        plot_learning_curves([{"epoch": 1, "note": None}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plotting_leaves_pyplot_and_backend_alone(tmp_path):
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        "from core.plots import plot_learning_curves\n"
        f"plot_learning_curves([{{'epoch': 1, 'loss': 1.0}}, {{'epoch': 2, 'loss': 0.5}}], {str(tmp_path / 'a.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_SIGNATURE
