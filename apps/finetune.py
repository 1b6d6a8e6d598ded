"""``zerodl finetune``: fine-tune a pretrained CNN (EfficientNet-Lite0 on ImageNet) on your images.

  zerodl finetune --data photos/ --img-size 224 --freeze backbone --cache-features --epochs 30
  zerodl finetune --data fashion-mnist --per-class 100 --img-size 96 --freeze last:2 --epochs 10
  zerodl finetune --demo          # few-shot Fashion-MNIST: pretrained vs from scratch

--data is an image folder with train/ and test/ sub-folders of class folders,
or a built-in dataset name (fashion-mnist, mnist, kmnist, cifar10, cifar100).
Images are resized to --img-size, grey images become RGB, and the weights'
own normalisation applies. --freeze picks what trains: backbone (only the new
classifier), last:K (the last K stages too), none (everything; the backbone
at --backbone-lr-scale times the rate). Frozen BatchNorm stays in eval mode.
--cache-features (with --freeze backbone) embeds every training image once
(--cache-copies augmented copies with --augment) and trains the classifier on
the stored features: seconds instead of minutes.

The run folder holds config.json, metrics.csv, learning_curves.png,
checkpoints/{last,best}.npz, features.npz (cached mode), model.npz (usable
with `zerodl classify predict/eval`), confusion_matrix.png, misclassified.png,
per_class.txt and results.json. --resume continues an interrupted run.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

_CONFIG_ARGS = {"model": "model", "weights": "weights", "data": "dataset", "data_dir": "data_dir",
                "img_size": "img_size", "freeze": "freeze", "bn_stats": "bn_stats",
                "cache_features": "cache_features",
                "cache_copies": "cache_copies", "epochs": "epochs", "head_epochs": "head_epochs", "batch_size": "batch_size",
                "optimizer": "optimizer", "lr": "lr", "backbone_lr_scale": "backbone_lr_scale",
                "weight_decay": "weight_decay", "schedule": "schedule", "label_smoothing": "label_smoothing",
                "augment": "augment", "val_fraction": "val_fraction", "per_class": "per_class",
                "train_limit": "train_limit", "test_limit": "test_limit", "seed": "seed"}


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter
    from vision.finetune import OPTIMIZERS, SCHEDULES, FinetuneConfig
    from vision.transfer import FREEZE_HELP
    from vision.weights import WEIGHTS

    d = FinetuneConfig()
    p = subparsers.add_parser("finetune", help="fine-tune a pretrained CNN on an image folder or dataset",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", default=d.model, choices=sorted(WEIGHTS), help="pretrained weights entry")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="checkpoint file (.pth/.pt/.bin/.safetensors/.npz); default: the entry's own file")
    p.add_argument("--scratch", action="store_true",
                   help="start from random weights instead (the baseline transfer is measured against)")
    p.add_argument("--data", default=d.dataset,
                   help="image folder with train/ and test/ class folders, or a dataset name")
    p.add_argument("--data-dir", default=None, help="folder holding built-in dataset files (searched first)")
    p.add_argument("--img-size", type=int, default=None,
                   help=f"side the images are resized to (default {d.img_size}, the weights' own; --demo: 96)")
    p.add_argument("--freeze", default=d.freeze, help=FREEZE_HELP)
    p.add_argument("--bn-stats", choices=("auto", "frozen", "update"), default=d.bn_stats,
                   help="BatchNorm statistics while fine-tuning: frozen (pretrained ones), update (follow the new "
                        "data), auto (frozen for pretrained weights, update from scratch)")
    p.add_argument("--cache-features", action="store_true",
                   help="embed the images once with the frozen backbone and train the classifier on the features")
    p.add_argument("--cache-copies", type=int, default=d.cache_copies,
                   help="augmented copies of each image in the feature cache (needs --augment)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    p.add_argument("--head-epochs", type=int, default=d.head_epochs,
                   help="first train the new classifier alone on cached features for this many epochs "
                        "(with --freeze none or last:K), then fine-tune")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="mini-batch size")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="optimizer")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate of the classifier")
    p.add_argument("--backbone-lr-scale", type=float, default=d.backbone_lr_scale,
                   help="the trainable backbone's rate is this times --lr")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="weight decay (not on 1-d params)")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="learning-rate schedule (per step)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="label smoothing epsilon")
    p.add_argument("--augment", default=None,
                   help="augmentation preset (flip, crop-flip, crop-flip-erase, a core.augment preset) or a "
                        ".json/.toml pipeline file, applied before the resize")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of the training images held out for validation (0 for few-shot data)")
    p.add_argument("--per-class", type=int, default=None, help="keep this many training images per class")
    p.add_argument("--train-limit", type=int, default=None, help="keep this many training images")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on this many test images")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for subsets, split, head init and shuffling")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run folder (default runs/finetune/<data>-<model>-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir (its config.json wins over other options)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--demo", action="store_true",
                   help="run the few-shot Fashion-MNIST comparison (pretrained vs scratch) instead")
    p.add_argument("--demo-budgets", type=int, nargs="+", default=[10, 100], metavar="N",
                   help="--demo: labelled training images per class")
    p.add_argument("--demo-steps", type=int, default=240,
                   help="--demo: gradient steps of each end-to-end run (pretrained and from scratch)")
    p.set_defaults(func=run)


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def config_from_args(args):
    """The :class:`FinetuneConfig` the options describe (``--resume``: the run folder's config)."""
    from vision.finetune import FinetuneConfig

    if args.resume:
        if args.run_dir is None:
            raise ValueError("--resume needs --run-dir pointing at the run to continue")
        cfg = Path(args.run_dir) / "config.json"
        if not cfg.is_file():
            raise ValueError(f"--resume: {cfg} does not exist; is {args.run_dir} a finetune run folder?")
        return FinetuneConfig.from_dict(json.loads(cfg.read_text())["config"])
    values = {field: getattr(args, arg) for arg, field in _CONFIG_ARGS.items()}
    if values["img_size"] is None:
        del values["img_size"]  # the config's default: the pretrained network's own input size
    values["pretrained"] = not args.scratch
    return FinetuneConfig.from_dict(values)


class FeatureProgress:
    """A tqdm bar over feature extraction (``on_feature_batch``)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="embedding", unit="img", leave=False)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


def run_one(config, run_dir: Path, progress: bool = True, resume: bool = False, data=None) -> dict:
    """Fine-tune, save model.npz, evaluate on the test split and write the report; returns the results."""
    from apps.classify import write_test_report
    from vision.classification import save_classifier
    from vision.finetune import FitCollate, finetune, load_finetune_data, predict_dataset

    data = data if data is not None else load_finetune_data(config)
    result = finetune(config, run_dir=run_dir, progress=progress, resume=resume, data=data,
                      on_feature_batch=FeatureProgress(progress))
    save_classifier(run_dir / "model.npz", result.model, result.spec)
    start = time.perf_counter()
    collate = FitCollate(config.img_size, result.entry.mean, result.entry.std)
    probs = predict_dataset(result.model, data[1], collate)
    labels = data[1].labels
    title = f"{config.model}{'' if config.pretrained else ' (scratch)'}"
    test = write_test_report(probs, labels, data[1].images, result.spec.classes, run_dir, title)
    results = {"test_accuracy": test["accuracy"], "per_class_accuracy": test["per_class_accuracy"],
               "train_images": len(data[0]), "test_images": len(data[1]), "epochs": len(result.history),
               "freeze": result.freeze.describe(), "trainable_params": result.freeze.trainable_params,
               "feature_seconds": result.feature_seconds, "train_seconds": result.train_seconds,
               "test_seconds": time.perf_counter() - start}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return {**results, "table": test["table"], "history": result.history}


def run(args) -> int:
    from core.serialization import CheckpointError

    if args.demo:
        from apps.finetune_demo import run_demo

        return run_demo(args)
    try:
        config = config_from_args(args)
    except (ValueError, OSError, json.JSONDecodeError) as e:
        return _error(str(e))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.run_dir or Path("runs") / "finetune" / f"{Path(config.dataset).name}-{config.model}-{stamp}"
    try:
        from vision.finetune import load_finetune_data

        data = load_finetune_data(config)
        print(f"{config.dataset}: {len(data[0])} training and {len(data[1])} test images, {data[0].num_classes} "
              f"classes; {config.model} {'pretrained' if config.pretrained else 'from scratch'} at "
              f"{config.img_size}x{config.img_size}; run folder {run_dir}")
        out = run_one(config, run_dir, progress=not args.no_progress, resume=args.resume, data=data)
    except (ValueError, FileNotFoundError, CheckpointError, ImportError) as e:
        return _error(str(e))
    print(out["freeze"])
    for row in out["history"][-3:]:
        val = f" | val loss {row['val_loss']:.4f} acc {100 * row['val_accuracy']:.2f}%" if "val_loss" in row else ""
        print(f"epoch {row['epoch']}: train loss {row['loss']:.4f} acc {100 * row.get('accuracy', np.nan):.2f}%{val}")
    print(out["table"])
    cached = f", features {out['feature_seconds']:.0f} s" if config.cache_features else ""
    print(f"test accuracy {100 * out['test_accuracy']:.2f}% on {out['test_images']} images after "
          f"{out['epochs']} epochs (training {out['train_seconds']:.0f} s{cached})")
    print(f"run folder: {run_dir} (model.npz, metrics.csv, learning_curves.png, confusion_matrix.png, "
          "misclassified.png, per_class.txt, results.json, checkpoints/)")
    return 0
