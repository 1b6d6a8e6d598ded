"""Argument checks shared by the model builders (messages name the builder and the argument)."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def check_builder_args(where: str, num_classes, in_channels, input_size) -> tuple[int, int]:
    """Validate the three arguments every builder takes; returns ``(H, W)``."""
    _positive_int(num_classes, "num_classes", where)
    _positive_int(in_channels, "in_channels", where)
    if isinstance(input_size, (int, np.integer)) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
        raise ValueError(f"{where}: input_size must be an int or a pair (H, W), got {input_size!r}")
    h, w = (_positive_int(s, "input_size", where) for s in input_size)
    return h, w


@contextmanager
def input_grad_off(module):
    """Temporarily set ``module.requires_input_grad = False`` (parameter gradients only, no ``dx``)."""
    own = module.__dict__.get("requires_input_grad")
    module.requires_input_grad = False
    try:
        yield module
    finally:
        if own is None:
            module.__dict__.pop("requires_input_grad", None)
        else:
            module.requires_input_grad = own
