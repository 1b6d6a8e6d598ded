"""``zerodl hpo``: validation-set search over the learning rate and weight decay (the book, ch. 6.5).

  zerodl hpo --dataset fashion-mnist --model simpleconvnet --trials 20 --epochs 2 --train-limit 5000
  zerodl hpo ... --sampler tpe --workers 2      # Optuna's TPE (pip install optuna), trials in 2 processes

Each trial trains the model for a few epochs with a learning rate and a
weight decay drawn log-uniformly from the given ranges and is scored on the
validation split (never the test set). The output folder gets trials.csv,
a scatter plot of validation accuracy over the two hyper-parameters
(scatter.png) and best.json, whose "config" entry ``zerodl classify train
--config best.json`` accepts.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter
    from vision.classification import OPTIMIZERS

    p = subparsers.add_parser("hpo", help="random / TPE search of learning rate and weight decay",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist", help="dataset name")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    p.add_argument("--model", default="simpleconvnet", help="model name")
    p.add_argument("--model-args", default='{"init": "he_normal"}',
                   help="builder keywords as JSON (He initialisation lets plain SGD learn within a few epochs)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="optimizer of every trial")
    p.add_argument("--trials", type=int, default=20, help="configurations to try")
    p.add_argument("--epochs", type=int, default=2, help="training epochs per trial")
    p.add_argument("--batch-size", type=int, default=100, help="mini-batch size")
    p.add_argument("--train-limit", type=int, default=5000,
                   help="training images per trial (the book searches on a reduced set; 0: all)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of those images used for validation")
    p.add_argument("--lr-range", type=float, nargs=2, default=[1e-3, 1.0], metavar=("LOW", "HIGH"),
                   help="log-uniform learning-rate range")
    p.add_argument("--wd-range", type=float, nargs=2, default=[1e-6, 1e-2], metavar=("LOW", "HIGH"),
                   help="log-uniform weight-decay range")
    p.add_argument("--sampler", choices=("random", "tpe"), default="random",
                   help="random search (the book) or Optuna's TPE (needs optuna)")
    p.add_argument("--workers", type=int, default=1, help="trials run in parallel processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial's training")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/hpo/<dataset>-<model>-<time>)")
    p.set_defaults(func=run)


def run(args) -> int:
    from vision.classification import TrainConfig
    from vision.hpo import SearchSpace, format_trials, random_search, save_search

    try:
        model_kwargs = json.loads(args.model_args)
        if not isinstance(model_kwargs, dict):
            raise ValueError(f"--model-args must be a JSON object, got {args.model_args!r}")
        space = SearchSpace(lr=tuple(args.lr_range), weight_decay=tuple(args.wd_range))
        config = TrainConfig(dataset=args.dataset, data_dir=args.data_dir, model=args.model, model_kwargs=model_kwargs,
                             optimizer=args.optimizer, epochs=args.epochs, batch_size=args.batch_size,
                             train_limit=args.train_limit or None, val_fraction=args.val_fraction, seed=args.seed)
    except ValueError as e:  # includes json.JSONDecodeError
        print(f"error: {e}", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("runs") / "hpo" / f"{Path(args.dataset).name}-{args.model}-{stamp}"

    def progress(row):
        acc = row["val_accuracy"]
        shown = f"{100 * acc:6.2f}%" if math.isfinite(acc) else "  failed"
        print(f"trial {row['trial']:3d}: lr {row['lr']:.2e} weight_decay {row['weight_decay']:.2e} -> "
              f"val acc {shown} ({row['seconds']:.1f} s)", flush=True)

    try:
        result = random_search(config, trials=args.trials, space=space, seed=args.seed, workers=args.workers,
                               sampler=args.sampler, callback=progress)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = save_search(result, out, config)
    print(format_trials(result, top=10))
    if result.best is None:
        print("every trial failed (diverged); lower the learning-rate range", file=sys.stderr)
        return 1
    b = result.best
    print(f"best: trial {b['trial']} lr {b['lr']:.3e} weight_decay {b['weight_decay']:.3e} "
          f"val acc {100 * b['val_accuracy']:.2f}%")
    print(f"wrote {paths['trials']}, {paths['scatter']}, {paths['best']} "
          f"(train it: zerodl classify train --config {paths['best']} --epochs 20)")
    return 0
