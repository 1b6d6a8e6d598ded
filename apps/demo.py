"""``zerodl demo``: train an MLP on generated 2-D spirals — the engine end to end in seconds.

Data -> ArrayDataset -> train/validation split -> DataLoader -> MLP (He init,
optional BatchNorm/Dropout) -> softmax cross-entropy -> Adam/SGD -> Trainer
with checkpoints, metrics CSV and a learning-curve plot in the run folder.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")


def make_spirals(n_per_class: int, num_classes: int, noise: float, seed: int):
    """``num_classes`` interleaved spiral arms in 2-D: x ``(N, 2)`` float32, y ``(N,)`` int64."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, size=(num_classes, n_per_class)))
    angle = 4.0 * t + (2 * np.pi / num_classes) * np.arange(num_classes)[:, None]
    radius = t + noise * rng.standard_normal(t.shape)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).reshape(-1, 2)
    y = np.repeat(np.arange(num_classes), n_per_class)
    return x.astype(np.float32), y.astype(np.int64)


def build_mlp(in_features: int, hidden: list[int], num_classes: int, batchnorm: bool,
              dropout: float, seed: int):
    from core.layers import BatchNorm1d, Dropout, Linear, ReLU
    from core.module import Sequential

    rng = np.random.default_rng(seed)
    layers, width = [], in_features
    for h in hidden:
        layers.append(Linear(width, h, init="he_normal", rng=rng))
        if batchnorm:
            layers.append(BatchNorm1d(h))
        layers.append(ReLU())
        if dropout > 0:
            layers.append(Dropout(dropout, rng=rng))
        width = h
    layers.append(Linear(width, num_classes, init="xavier_normal", rng=rng))
    return Sequential(*layers)


def make_optimizer(name: str, params, lr: float, weight_decay: float):
    from core import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adagrad":
        return optim.AdaGrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter

    p = subparsers.add_parser("demo", help="train an MLP on generated spirals (engine smoke test)",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--classes", type=int, default=3, help="number of spiral arms (classes)")
    p.add_argument("--samples", type=int, default=1000, help="samples per class")
    p.add_argument("--noise", type=float, default=0.05, help="radial noise of the spirals")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64], help="hidden layer widths")
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after each hidden Linear")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each hidden ReLU")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    p.add_argument("--epochs", type=int, default=40, help="training epochs")
    p.add_argument("--batch-size", type=int, default=100, help="mini-batch size")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of samples held out for validation")
    p.add_argument("--seed", type=int, default=0, help="seed for data, init and shuffling")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run folder (default runs/demo/<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from core.data import ArrayDataset, DataLoader, train_val_split
    from core.losses import CrossEntropyLoss
    from core.trainer import Trainer

    for name in ("classes", "samples", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
            return 2
    if not 0.0 < args.val_fraction < 1.0:
        print(f"error: --val-fraction must be in (0, 1), got {args.val_fraction}")
        return 2
    if args.resume and args.run_dir is None:
        print("error: --resume needs --run-dir pointing at the run to continue")
        return 2
    run_dir = args.run_dir or Path("runs") / "demo" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))

    x, y = make_spirals(args.samples, args.classes, args.noise, args.seed)
    train_set, val_set = train_val_split(ArrayDataset(x, y), args.val_fraction, stratify=True, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    val_loader = DataLoader(val_set, batch_size=1000, shuffle=False)

    model = build_mlp(2, args.hidden, args.classes, args.batchnorm, args.dropout, args.seed)
    opt = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    trainer = Trainer(model, CrossEntropyLoss(), opt, run_dir=run_dir, monitor="val_accuracy",
                      progress=not args.no_progress)
    history = trainer.fit(train_loader, val_loader, epochs=args.epochs, resume=args.resume)
    if not history:
        print(f"nothing to do: {run_dir} already holds {args.epochs} epochs")
        return 0
    last = history[-1]
    print(f"epoch {last['epoch']}: train loss {last['loss']:.4f} acc {last.get('accuracy', float('nan')):.3f} | "
          f"val loss {last['val_loss']:.4f} acc {last['val_accuracy']:.3f}")
    print(f"run folder: {run_dir} (metrics.csv, learning_curves.png, checkpoints/)")
    return 0
