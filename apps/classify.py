"""``zerodl classify``: train, evaluate, use and ensemble image classifiers.

  zerodl classify train --dataset fashion-mnist --model deepconvnet --epochs 20
  zerodl classify eval --checkpoint runs/classify/fashion-mnist-deepconvnet
  zerodl classify predict --checkpoint RUN_OR_FILE shoe.png shirt.jpg --top-k 3
  zerodl classify ensemble --checkpoints RUN_A RUN_B RUN_C
  zerodl classify summary --model resnet20 --input-size 28 28

train writes a run folder: config.json, metrics.csv, learning_curves.png,
checkpoints/{last,best}.npz, model.npz (weights + architecture + preprocessing),
and for the test split: confusion_matrix.png, misclassified.png,
per_class.txt and results.json, plus filters.png (the first conv layer's
filters, book ch. 7). --resume continues an interrupted run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

_SPLITS = ("train", "test")


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter
    from vision.classification import NORMALIZATIONS, OPTIMIZERS, SCHEDULES, TrainConfig

    d = TrainConfig(model="simpleconvnet", epochs=10)
    p = subparsers.add_parser("classify", help="train / evaluate / predict / ensemble image classifiers",
                              description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a model on a dataset and write a run folder",
                       formatter_class=HelpFormatter)
    t.add_argument("--dataset", default=d.dataset,
                   help="dataset name (mnist, fashion-mnist, kmnist, cifar10, cifar100) or an image folder with "
                        "train/ and test/ sub-folders of class folders")
    t.add_argument("--image-mode", choices=("L", "RGB"), default=d.image_mode,
                   help="image-folder datasets: grayscale (L) or colour (RGB)")
    t.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="image-folder datasets: resize every image to H x W")
    t.add_argument("--data-dir", default=None, help="folder holding the dataset files (searched first)")
    t.add_argument("--model", default=d.model, help="model name (see `zerodl classify summary --list`)")
    t.add_argument("--model-args", default="{}", help='extra builder keywords as JSON, e.g. \'{"width": 0.5}\'')
    t.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help="mini-batch size")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="optimizer")
    t.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    t.add_argument("--momentum", type=float, default=d.momentum, help="momentum of momentum/nesterov SGD")
    t.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="learning-rate schedule")
    t.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="linear warm-up epochs")
    t.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="L2 weight decay (not applied to biases and BatchNorm)")
    t.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="label smoothing epsilon")
    t.add_argument("--augment", default=None,
                   help="augmentation preset (flip, crop-flip, crop-flip-erase, or a core.augment preset) "
                        "or a .json/.toml pipeline file")
    t.add_argument("--normalize", choices=NORMALIZATIONS, default=d.normalize,
                   help="inputs /255 (scale, the book) or per-channel standardisation")
    t.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of the training split held out for validation (0: train on all)")
    t.add_argument("--train-limit", type=int, default=None, help="use only this many training images")
    t.add_argument("--grad-clip", type=float, default=None, help="clip the global gradient norm")
    t.add_argument("--workers", type=int, default=0, help="loader worker processes")
    t.add_argument("--seed", type=int, default=d.seed, help="seed for split, init, shuffling and augmentation")
    t.add_argument("--config", default=None,
                   help="JSON file with a training config (e.g. best.json from `zerodl hpo`); "
                        "options given on the command line override it")
    t.add_argument("--run-dir", type=Path, default=None,
                   help="run folder (default runs/classify/<dataset>-<model>-<timestamp>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="evaluate a trained classifier on a dataset split",
                       formatter_class=HelpFormatter)
    e.add_argument("--checkpoint", required=True, help="run folder, model.npz or checkpoints/*.npz")
    _data_args(e)
    e.add_argument("--float16", action="store_true", help="also evaluate with float16 weights and inputs")
    e.add_argument("--out", type=Path, default=None, help="write the report files (PNG, txt, json) here")
    e.set_defaults(func=run_eval)

    pr = sub.add_parser("predict", help="top-k classes of image files", formatter_class=HelpFormatter)
    pr.add_argument("--checkpoint", required=True, help="run folder, model.npz or checkpoints/*.npz")
    pr.add_argument("images", nargs="+", help="image files (resized to the model's input size)")
    pr.add_argument("--top-k", type=int, default=3, help="classes to show per image")
    pr.add_argument("--invert", action="store_true",
                    help="invert grey levels (dark-on-light photos for light-on-dark data like Fashion-MNIST)")
    pr.set_defaults(func=run_predict)

    en = sub.add_parser("ensemble", help="average several classifiers and report the gain",
                        formatter_class=HelpFormatter)
    en.add_argument("--checkpoints", nargs="+", required=True, help="two or more runs / model files")
    _data_args(en)
    en.set_defaults(func=run_ensemble)

    s = sub.add_parser("summary", help="per-layer table of a model", formatter_class=HelpFormatter)
    s.add_argument("--model", default=d.model, help="model name")
    s.add_argument("--list", action="store_true", help="list the model names and exit")
    s.add_argument("--num-classes", type=int, default=10, help="classes")
    s.add_argument("--in-channels", type=int, default=1, help="image channels")
    s.add_argument("--input-size", type=int, nargs=2, default=[28, 28], metavar=("H", "W"), help="image size")
    s.add_argument("--model-args", default="{}", help="extra builder keywords as JSON")
    s.set_defaults(func=run_summary)


def _data_args(p) -> None:
    p.add_argument("--dataset", default=None, help="dataset name (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    p.add_argument("--split", choices=_SPLITS, default="test", help="which split to evaluate")


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _json_arg(text: str, name: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{name} must be a JSON object, got {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {text!r}")
    return value


# ------------------------------------------------------------------- train
_CONFIG_ARGS = ("dataset", "data_dir", "image_mode", "image_size", "model", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                "schedule", "warmup_epochs", "label_smoothing", "augment", "normalize", "val_fraction", "train_limit",
                "grad_clip", "seed")


def _train_config(args, parser_defaults: dict):
    from vision.classification import TrainConfig

    base = {}
    if args.config:
        data = json.loads(Path(args.config).read_text())
        base = data.get("config", data) if isinstance(data, dict) else {}
        if not isinstance(base, dict):
            raise ValueError(f"--config {args.config}: expected a JSON object with a training config")
    values = dict(base)
    for name in _CONFIG_ARGS:
        given = getattr(args, name)
        if name not in values or given != parser_defaults.get(name):
            values[name] = given
    extra = _json_arg(args.model_args, "--model-args")
    if extra or "model_kwargs" not in values:
        values["model_kwargs"] = extra
    values["num_workers"] = args.workers
    return TrainConfig.from_dict(values)


def report_test(model, spec, dataset, out_dir: Path, title: str = "") -> dict:
    """Evaluate on ``dataset`` and write confusion_matrix.png, misclassified.png, per_class.txt; returns figures."""
    from vision.classification import evaluate

    probs, labels = evaluate(model, spec, dataset)
    return write_test_report(probs, labels, dataset.images, spec.classes, out_dir, title)


def write_test_report(probs, labels, images, classes, out_dir: Path, title: str = "") -> dict:
    """Write confusion_matrix.png, misclassified.png and per_class.txt for predictions ``probs (N, K)``."""
    from vision.metrics import classification_report, confusion_matrix, format_class_table
    from vision.plots import plot_confusion_matrix, plot_misclassified

    pred = probs.argmax(axis=1)
    cm = confusion_matrix(labels, pred, len(classes))
    report = classification_report(cm, classes)
    table = format_class_table(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "per_class.txt").write_text(table + "\n")
    plot_confusion_matrix(cm, classes, out_dir / "confusion_matrix.png",
                          title=f"{title} confusion matrix ({100 * report.overall:.2f}%)".strip())
    plot_misclassified(images, labels, pred, classes, out_dir / "misclassified.png", probs=probs)
    return {"accuracy": report.overall, "per_class_accuracy": dict(zip(classes, report.accuracy.tolist())),
            "table": table, "probs": probs, "labels": labels}


def _first_conv_weight(model):
    from core.layers import Conv2d

    for _, m in model.named_modules():
        if isinstance(m, Conv2d):
            return m.weight.data
    return None


def run_train(args) -> int:
    from vision.classification import load_data, save_classifier, train
    from vision.plots import plot_filters

    try:
        config = _train_config(args, vars(_train_defaults()) if args.config else {})
    except (ValueError, OSError) as e:
        return _error(str(e))
    if args.resume and args.run_dir is None:
        return _error("--resume needs --run-dir pointing at the run to continue")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.run_dir or Path("runs") / "classify" / f"{Path(config.dataset).name}-{config.model}-{stamp}"
    try:
        data = load_data(config)
        print(f"{config.dataset}: {len(data[0])} training and {len(data[1])} test images, "
              f"{data[0].num_classes} classes; model {config.model}; run folder {run_dir}")
        start = time.perf_counter()
        result = train(config, run_dir=run_dir, progress=not args.no_progress, resume=args.resume, data=data)
    except (ValueError, FileNotFoundError) as e:
        return _error(str(e))
    elapsed = time.perf_counter() - start
    save_classifier(run_dir / "model.npz", result.model, result.spec)
    weight = _first_conv_weight(result.model)
    if weight is not None:
        plot_filters(weight, run_dir / "filters.png", title=f"{config.model}: first conv layer after training")
    test = report_test(result.model, result.spec, data[1], run_dir, title=config.model)
    last = result.history[-1] if result.history else {}
    results = {"test_accuracy": test["accuracy"], "per_class_accuracy": test["per_class_accuracy"],
               "epochs": len(result.history), "train_seconds": elapsed,
               "final": {k: v for k, v in last.items() if isinstance(v, (int, float))}}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    for row in result.history[-3:]:
        val = f" | val loss {row['val_loss']:.4f} acc {100 * row['val_accuracy']:.2f}%" if "val_loss" in row else ""
        print(f"epoch {row['epoch']}: train loss {row['loss']:.4f} acc {100 * row.get('accuracy', np.nan):.2f}%{val}")
    print(test["table"])
    print(f"test accuracy {100 * test['accuracy']:.2f}% after {len(result.history)} epochs ({elapsed:.0f} s)")
    print(f"run folder: {run_dir} (model.npz, metrics.csv, learning_curves.png, confusion_matrix.png, "
          "misclassified.png, filters.png, per_class.txt, results.json, checkpoints/)")
    return 0


# -------------------------------------------------------------------- eval
def _load(path):
    from vision.classification import load_classifier

    return load_classifier(path)


def _dataset_for(args, spec):
    from vision.classification import load_split

    name = args.dataset or spec.dataset
    if not name:
        raise ValueError("the checkpoint does not say which dataset it was trained on; pass --dataset")
    mode = "L" if spec.in_channels == 1 else "RGB"
    return load_split(name, args.split, args.data_dir, image_mode=mode, image_size=tuple(spec.input_size))


def _run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint path (the folder itself, ``run/model.npz`` or ``run/checkpoints/x.npz``)."""
    if checkpoint.is_dir():
        return checkpoint
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def run_eval(args) -> int:
    from core.serialization import CheckpointError
    from vision.classification import evaluate

    try:
        model, spec = _load(args.checkpoint)
        dataset = _dataset_for(args, spec)
        out = args.out or _run_folder(Path(args.checkpoint)) / f"eval-{dataset.name}-{args.split}"
        test = report_test(model, spec, dataset, out, title=spec.model)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        return _error(str(e))
    print(test["table"])
    print(f"{spec.model} on {dataset.name} {args.split}: accuracy {100 * test['accuracy']:.2f}% "
          f"({len(dataset)} images)")
    summary = {"accuracy": test["accuracy"], "per_class_accuracy": test["per_class_accuracy"]}
    if args.float16:
        model.astype(np.float16)
        probs16, labels = evaluate(model, spec, dataset, dtype=np.float16)
        acc16 = float(np.mean(probs16.argmax(axis=1) == labels))
        change = 100 * (acc16 - test["accuracy"])
        agree = float(np.mean(probs16.argmax(axis=1) == test["probs"].argmax(axis=1)))
        print(f"float16: accuracy {100 * acc16:.2f}% ({change:+.2f} points), same prediction for "
              f"{100 * agree:.2f}% of images")
        summary.update(float16_accuracy=acc16, float16_change_points=change, float16_agreement=agree)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"report files: {out}")
    return 0


# ----------------------------------------------------------------- predict
def run_predict(args) -> int:
    from core.serialization import CheckpointError
    from vision.classification import predict_proba, preprocess
    from vision.datasets import read_image

    if args.top_k < 1:
        return _error(f"--top-k must be >= 1, got {args.top_k}")
    try:
        model, spec = _load(args.checkpoint)
        mode = "L" if spec.in_channels == 1 else "RGB"
        images = np.stack([read_image(p, mode=mode, size=tuple(spec.input_size)) for p in args.images])
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        return _error(str(e))
    if args.invert:
        images = 255 - images
    probs = predict_proba(model, preprocess(images, spec.mean, spec.std))
    k = min(args.top_k, spec.num_classes)
    for path, p in zip(args.images, probs):
        order = np.argsort(-p)[:k]
        ranked = ", ".join(f"{spec.classes[i]} {100 * p[i]:.1f}%" for i in order)
        print(f"{path}: {ranked}")
    return 0


# ---------------------------------------------------------------- ensemble
def run_ensemble(args) -> int:
    from core.serialization import CheckpointError
    from vision.classification import evaluate
    from vision.ensemble import ensemble_report, format_ensemble_report

    if len(args.checkpoints) < 2:
        return _error(f"--checkpoints needs at least two members, got {len(args.checkpoints)}")
    probs, names, labels, first = [], [], None, None
    try:
        for path in args.checkpoints:
            model, spec = _load(path)
            if first is None:
                first = spec
                dataset = _dataset_for(args, spec)
            elif spec.classes != first.classes:
                raise ValueError(f"{path} predicts classes {spec.classes}, {args.checkpoints[0]} predicts "
                                 f"{first.classes}; ensemble members must share their classes")
            p, labels = evaluate(model, spec, dataset)
            probs.append(p)
            names.append(f"{Path(path).name} ({spec.model})")
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        return _error(str(e))
    report = ensemble_report(probs, labels, names)
    print(format_ensemble_report(report))
    return 0


# ----------------------------------------------------------------- summary
def run_summary(args) -> int:
    from vision.models import build_model, format_summary, model_names, summarize

    if args.list:
        print("\n".join(model_names()))
        return 0
    try:
        model = build_model(args.model, num_classes=args.num_classes, in_channels=args.in_channels,
                            input_size=tuple(args.input_size), **_json_arg(args.model_args, "--model-args"))
        rows = summarize(model, (args.in_channels, *args.input_size))
    except (ValueError, TypeError) as e:
        return _error(str(e))
    print(format_summary(rows, model))
    return 0


def _train_defaults():
    """The train sub-command's defaults, to tell options given on the command line from defaults."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="app"))
    return parser.parse_args(["classify", "train"])
