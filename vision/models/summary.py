"""Model summary: each layer's output shape, parameter count and multiply-accumulates, and the totals.

``summarize(model, input_shape)`` runs one forward pass in eval mode on a
zero batch while every leaf module's ``forward`` is temporarily wrapped to
record what it returns; the model's state (mode, caches aside) is restored.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from core.layers import Conv2d, Linear
from core.module import Module

__all__ = ["LayerInfo", "summarize", "format_summary"]


class LayerInfo(NamedTuple):
    """One row of a summary."""

    name: str  # dotted name in the model ("layer1.0.conv1")
    kind: str  # class name
    output_shape: tuple  # without the batch axis
    params: int  # parameters owned directly by this module
    trainable: int  # of which trainable
    macs: int  # multiply-accumulates per sample (Conv2d / Linear), else 0


def _macs(module: Module, out) -> int:
    per_sample = math.prod(out.shape[1:])
    if isinstance(module, Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, Linear):
        return per_sample * module.in_features
    return 0


def summarize(model: Module, input_shape, dtype=np.float32) -> list:
    """Per-layer ``LayerInfo`` rows for one input of ``input_shape`` ``(C, H, W)`` (no batch axis).

    Leaf modules (no children) are listed in the order they run; a module
    called several times is listed each time. Raises the model's own
    ``ValueError`` when the input shape does not fit it.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 1 or min(shape) < 1:
        raise ValueError(f"summarize: input_shape must be positive sizes without the batch axis, e.g. (1, 28, 28); "
                         f"got {input_shape!r}")
    rows = []
    wrapped = []
    for name, mod in model.named_modules():
        if any(True for _ in mod.children()):
            continue
        original = mod.forward

        def recording(*args, _mod=mod, _name=name, _orig=original, **kwargs):
            out = _orig(*args, **kwargs)
            own = list(_mod._parameters.values())
            params = sum(p.size for p in own if p is not None)
            trainable = sum(p.size for p in own if p is not None and p.trainable)
            rows.append(LayerInfo(_name, type(_mod).__name__, tuple(out.shape[1:]), params, trainable,
                                  _macs(_mod, out)))
            return out

        object.__setattr__(mod, "forward", recording)
        wrapped.append(mod)
    was_training = model.training
    model.eval()
    try:
        model(np.zeros((1,) + shape, dtype=dtype))
    finally:
        model.train(was_training)
        for mod in wrapped:
            mod.__dict__.pop("forward", None)
    return rows


def format_summary(rows, model: Module | None = None) -> str:
    """A fixed-width table of ``rows`` plus totals (from ``model`` when given: shared/unused params count once)."""
    headers = ("layer", "type", "output shape", "params", "MACs")
    table = [(r.name or "(root)", r.kind, "x".join(str(s) for s in r.output_shape), f"{r.params:,}",
              f"{r.macs:,}" if r.macs else "-") for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("-" * len(lines[0]))
    for t in table:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))))
    lines.append("-" * len(lines[0]))
    total = model.num_parameters() if model is not None else sum(r.params for r in rows)
    trainable = model.num_parameters(trainable_only=True) if model is not None else sum(r.trainable for r in rows)
    lines.append(f"total parameters: {total:,} (trainable {trainable:,})")
    lines.append(f"multiply-accumulates per sample: {sum(r.macs for r in rows):,}")
    return "\n".join(lines)
