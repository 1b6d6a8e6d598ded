"""Metrics CSV files and learning-curve plots.

Plots are drawn on a ``matplotlib.figure.Figure`` with the Agg canvas
directly, never through ``pyplot``: no global backend switch, no figure
registry, nothing left open for other users in the same process.

Metric families: a column ``val_<name>`` is the validation line of family
``<name>``; ``train_<name>`` or a bare ``<name>`` is its training line.
``epoch`` (else ``step``) is the x axis. So the trainer's columns
``epoch, loss, accuracy, val_loss, val_accuracy, lr`` give three panels:
loss, accuracy and lr.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .serialization import atomic_write_bytes

__all__ = ["read_metrics_csv", "write_metrics_csv", "metric_families", "plot_learning_curves"]

_X_COLUMNS = ("epoch", "step")


def _parse(text: str):
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_metrics_csv(path) -> list:
    """Rows of a metrics CSV as dicts; numbers become int/float, empty cells None."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise ValueError(f"read_metrics_csv: {path} is empty (no header row)")
        return [{k: _parse(v if v is not None else "") for k, v in row.items() if k is not None}
                for row in reader]


def write_metrics_csv(path, rows) -> None:
    """Atomically write ``rows`` (dicts) as CSV; the header is the union of keys in first-seen order.

    Missing values and None are written as empty cells; floats use their
    shortest exact repr so :func:`read_metrics_csv` gets the same numbers back.
    """
    rows = list(rows)
    if not rows:
        raise ValueError(f"write_metrics_csv: no rows to write to {path}")
    columns = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"write_metrics_csv: row {i} is a {type(row).__name__}, expected a dict")
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _to_float(value, column: str, row: int, source: str) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"plot_learning_curves: {source}: column {column!r} row {row + 1} holds "
                         f"{value!r}, expected a number") from None


def metric_families(columns) -> dict:
    """``{family: {"train": column or None, "val": column or None}}`` in first-seen order."""
    families = {}
    for col in columns:
        if col in _X_COLUMNS:
            continue
        if col.startswith("val_"):
            name, role = col[4:], "val"
        elif col.startswith("train_"):
            name, role = col[6:], "train"
        else:
            name, role = col, "train"
        entry = families.setdefault(name, {"train": None, "val": None})
        if entry[role] is None or role == "train" and col.startswith("train_"):
            entry[role] = col
    return families


def plot_learning_curves(metrics_csv_or_rows, path, metrics=None, title: str | None = None) -> Path:
    """Draw one panel per metric family (train vs validation) and save a PNG atomically.

    Args:
        metrics_csv_or_rows: path of a metrics CSV, or a list of row dicts.
        path: output ``.png`` path.
        metrics: family names to draw (e.g. ``["loss", "accuracy"]``); default all
            families with at least one number.
        title: optional figure title.

    Returns the output path. Raises ValueError for an empty CSV, a requested
    family that is not there, or a non-numeric cell.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(metrics_csv_or_rows, (str, Path)):
        source = str(metrics_csv_or_rows)
        rows = read_metrics_csv(metrics_csv_or_rows)
    else:
        source = "rows"
        rows = list(metrics_csv_or_rows)
    if not rows:
        raise ValueError(f"plot_learning_curves: {source} has no data rows")
    columns = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    x_col = next((c for c in _X_COLUMNS if c in columns), None)
    xs = [_to_float(r.get(x_col), x_col, i, source) if x_col else float(i + 1) for i, r in enumerate(rows)]
    families = metric_families(columns)
    series = {}
    for name, roles in families.items():
        lines = {}
        for role, col in roles.items():
            if col is not None:
                ys = [_to_float(r.get(col), col, i, source) for i, r in enumerate(rows)]
                pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
                if pts:
                    lines[role] = (col, pts)
        if lines:
            series[name] = lines
    if metrics is None:
        chosen = list(series)
        if not chosen:
            raise ValueError(f"plot_learning_curves: {source} has no numeric metric columns "
                             f"(columns: {', '.join(columns)})")
    else:
        chosen = [metrics] if isinstance(metrics, str) else list(metrics)
        missing = [m for m in chosen if m not in series]
        if missing:
            raise ValueError(f"plot_learning_curves: metrics {missing} not found in {source}; "
                             f"available: {', '.join(series) or '(none)'}")

    ncols = min(3, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    for k, name in enumerate(chosen):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        for role, (col, pts) in series[name].items():
            px, py = zip(*pts)
            label = "validation" if role == "val" else ("train" if "val" in series[name] else col)
            ax.plot(px, py, marker="o" if len(pts) < 30 else None, markersize=3, label=label)
            if name in ("lr", "learning_rate") and min(py) > 0 and max(py) / min(py) > 10:
                ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(x_col or "row")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
