"""``zerodl finetune --demo``: what transfer learning buys on a few labelled images.

For each label budget (``--demo-budgets``, default 10 and 100 Fashion-MNIST
training images per class, the same images for every method) it trains:

* **pretrained, frozen + cached**: EfficientNet-Lite0's ImageNet backbone
  embeds each image (4 augmented copies) once; only a new classifier trains.
* **pretrained, fine-tuned**: the same start, then the whole network trains
  (backbone at 0.3x the classifier's rate), ``--demo-steps`` gradient steps.
* **EfficientNet-Lite0 from scratch**: the same architecture and steps from
  random weights.
* **SimpleConvNet from scratch**: the book's CNN on the native 28x28 images.

Each is scored on the same ``--test-limit`` test images (default 2000). The
run folder gets one sub-folder per run (the usual finetune/classify outputs),
``results.json``, ``results.md`` (the table) and ``fewshot.png`` (the plot).
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np

METHODS = ("pretrained, frozen + cached", "pretrained, fine-tuned", "EfficientNet-Lite0 from scratch",
           "SimpleConvNet from scratch")
DEMO_IMG_SIZE = 96
DEMO_TEST_LIMIT = 2000
AUGMENT = "crop-flip"


def _configs(args, per_class: int, n_train: int):
    """FinetuneConfigs of the three EfficientNet methods for one budget."""
    from vision.finetune import FinetuneConfig

    img = args.img_size or DEMO_IMG_SIZE
    test_limit = args.test_limit or DEMO_TEST_LIMIT
    epochs = max(1, math.ceil(args.demo_steps * 32 / n_train))
    common = dict(model="efficientnet_lite0", weights=args.weights, dataset="fashion-mnist", data_dir=args.data_dir,
                  img_size=img, per_class=per_class, test_limit=test_limit, val_fraction=0.0, batch_size=32,
                  augment=AUGMENT, seed=args.seed)
    return {
        METHODS[0]: FinetuneConfig(freeze="backbone", cache_features=True, cache_copies=4, epochs=30, lr=1e-3,
                                   **common),
        METHODS[1]: FinetuneConfig(freeze="none", epochs=epochs, lr=1e-3, backbone_lr_scale=0.3, **common),
        METHODS[2]: FinetuneConfig(freeze="none", pretrained=False, epochs=epochs, lr=1e-3, backbone_lr_scale=1.0,
                                   **common),
    }, epochs


def _simpleconvnet(args, data, epochs: int, run_dir: Path, progress: bool) -> dict:
    from vision.classification import TrainConfig, evaluate, train

    config = TrainConfig(dataset="fashion-mnist", model="simpleconvnet", epochs=epochs, batch_size=32, lr=1e-3,
                         augment=AUGMENT, val_fraction=0.0, seed=args.seed)
    start = time.perf_counter()
    result = train(config, run_dir=run_dir, progress=progress, data=data)
    seconds = time.perf_counter() - start
    probs, labels = evaluate(result.model, result.spec, data[1])
    acc = float(np.mean(probs.argmax(axis=1) == labels))
    (run_dir / "results.json").write_text(json.dumps({"test_accuracy": acc, "train_seconds": seconds}, indent=2))
    return {"test_accuracy": acc, "train_seconds": seconds, "feature_seconds": 0.0}


def format_table(rows: list, budgets: list) -> str:
    """Markdown table: one row per method, one accuracy column per budget (seconds in brackets)."""
    head = "| method | " + " | ".join(f"{b}/class" for b in budgets) + " |"
    lines = [head, "|---|" + "---|" * len(budgets)]
    for method in METHODS:
        cells = []
        for b in budgets:
            r = next((r for r in rows if r["method"] == method and r["per_class"] == b), None)
            cells.append("–" if r is None else f"{100 * r['test_accuracy']:.1f}% ({r['seconds']:.0f} s)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(rows: list, budgets: list, path: Path, title: str) -> Path:
    """Grouped bars: test accuracy per method at each label budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.serialization import atomic_path

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    width = 0.8 / len(METHODS)
    for m, method in enumerate(METHODS):
        acc = [next((100 * r["test_accuracy"] for r in rows if r["method"] == method and r["per_class"] == b),
                    np.nan) for b in budgets]
        xs = np.arange(len(budgets)) + (m - (len(METHODS) - 1) / 2) * width
        bars = ax.bar(xs, acc, width, label=method)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(np.arange(len(budgets)), [f"{b} labelled images / class" for b in budgets])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def run_demo(args) -> int:
    from vision.finetune import load_finetune_data

    from apps.finetune import _error, run_one

    budgets = sorted(set(args.demo_budgets))
    if budgets[0] < 1 or args.demo_steps < 1:
        return _error(f"--demo-budgets must be >= 1 and --demo-steps >= 1, got {args.demo_budgets} and "
                      f"{args.demo_steps}")
    run_dir = args.run_dir or Path("runs") / "finetune" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    rows = []
    try:
        for per_class in budgets:
            configs, epochs = _configs(args, per_class, per_class * 10)
            data = load_finetune_data(next(iter(configs.values())))
            print(f"\n== {per_class} labelled images per class ({len(data[0])} training images, "
                  f"{len(data[1])} test images, {next(iter(configs.values())).img_size} px) ==")
            for method, config in configs.items():
                out = run_one(config, run_dir / f"{per_class}-per-class" / _slug(method), progress=progress,
                              data=data)
                seconds = out["train_seconds"] + out["feature_seconds"]
                rows.append({"method": method, "per_class": per_class, "test_accuracy": out["test_accuracy"],
                             "seconds": seconds, "trainable_params": out["trainable_params"]})
                print(f"{method:34s} {100 * out['test_accuracy']:6.2f}%  ({seconds:.0f} s)")
            # the same images at their native 28x28 grey (built-in datasets are not resized when loaded)
            out = _simpleconvnet(args, data, epochs,
                                 run_dir / f"{per_class}-per-class" / _slug(METHODS[3]), progress)
            rows.append({"method": METHODS[3], "per_class": per_class, "test_accuracy": out["test_accuracy"],
                         "seconds": out["train_seconds"], "trainable_params": None})
            print(f"{METHODS[3]:34s} {100 * out['test_accuracy']:6.2f}%  ({out['train_seconds']:.0f} s)")
    except (ValueError, FileNotFoundError, ImportError) as e:
        return _error(str(e))
    table = format_table(rows, budgets)
    title = "Few-shot Fashion-MNIST: what ImageNet pretraining buys"
    plot_results(rows, budgets, run_dir / "fewshot.png", title)
    (run_dir / "results.md").write_text(table + "\n")
    (run_dir / "results.json").write_text(json.dumps({"budgets": budgets, "rows": rows}, indent=2))
    print("\n" + table)
    print(f"\nrun folder: {run_dir} (results.md, results.json, fewshot.png, one folder per run)")
    return 0


def _slug(method: str) -> str:
    """``"pretrained, frozen + cached"`` -> ``"pretrained-frozen-cached"`` (a folder name)."""
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")
