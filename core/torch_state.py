"""State-dict tools: find, strip and rename the name -> array weights inside a loaded checkpoint.

Training scripts save more than weights: ``{"state_dict": ...}``,
``{"model": ...}``, an epoch counter, ``module.`` prefixes from
``DataParallel``, framework-specific key names. These helpers work on any
name -> array dict, whatever file format it came from
(``core.torch_pickle`` uses them for ``.pth`` files).
"""
from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np

from .serialization import CheckpointError

__all__ = ["STATE_DICT_KEYS", "unwrap_state_dict", "strip_prefixes", "rename_keys"]

#: Keys that commonly wrap the weights inside a training checkpoint, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights", "params")


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def unwrap_state_dict(obj, key: str | None = None, where: str = "checkpoint") -> "OrderedDict[str, np.ndarray]":
    """Find the name -> array dict inside a loaded checkpoint.

    Args:
        obj: what :func:`load_torch_file` (or another loader) returned.
        key: dotted path to the weights (``"model"``, ``"state_dict"``,
            ``"ema.model"``); by default ``obj`` itself when it is a flat dict of
            arrays, else the first of ``STATE_DICT_KEYS`` that holds one (searched
            recursively, so ``{"model": {"state_dict": ...}}`` works).
        where: file name for error messages.

    Non-array entries of a dict that holds weights (a stray ``epoch`` counter)
    are dropped.
    """
    if key is not None:
        node = obj
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                have = ", ".join(map(str, node.keys())) if isinstance(node, dict) else type(node).__name__
                raise CheckpointError(f"{where}: no entry {part!r} on the path {key!r} (found: {have})")
            node = node[part]
        found = node
    else:
        found = _search_state_dict(obj, depth=0)
    if not isinstance(found, dict) or not any(isinstance(v, np.ndarray) for v in found.values()):
        top = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:12]) \
            if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{where}: no dict of weight arrays found (top level: {top}); pass key= naming "
                              f"the entry that holds them")
    return OrderedDict((str(k), v) for k, v in found.items() if isinstance(v, np.ndarray))


def _search_state_dict(obj, depth: int):
    if _is_state_dict(obj):
        return obj
    if not isinstance(obj, dict) or depth > 3:
        return None
    for k in STATE_DICT_KEYS:
        if k in obj:
            hit = _search_state_dict(obj[k], depth + 1)
            if hit is not None:
                return hit
    # A flat dict of arrays with a few scalars mixed in still counts.
    if any(isinstance(v, np.ndarray) for v in obj.values()) and all(isinstance(k, str) for k in obj):
        return obj
    return None


def strip_prefixes(state: dict, prefixes=("module.",)) -> "OrderedDict[str, np.ndarray]":
    """Remove a leading prefix (``module.`` from ``DataParallel``) when *every* key carries it.

    Each prefix is tried in turn and may apply repeatedly (``module.module.``).
    """
    out = OrderedDict(state)
    for prefix in prefixes:
        while out and prefix and all(k.startswith(prefix) for k in out):
            out = OrderedDict((k[len(prefix):], v) for k, v in out.items())
    return out


def rename_keys(state: dict, rules, where: str = "checkpoint") -> "OrderedDict[str, np.ndarray]":
    """Apply ``(regex, replacement)`` rules, in order, to every key (``re.sub`` semantics).

    Example: ``[(r"^backbone\\.", ""), (r"\\.gamma$", ".weight")]``. Two keys
    that end up equal raise :class:`CheckpointError` naming both.
    """
    compiled = []
    for rule in rules or ():
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and all(isinstance(r, str) for r in rule)):
            raise TypeError(f"rename_keys: each rule must be a (regex, replacement) pair of str, got {rule!r}")
        try:
            compiled.append((re.compile(rule[0]), rule[1]))
        except re.error as e:
            raise ValueError(f"rename_keys: invalid regex {rule[0]!r}: {e}") from None
    out, origin = OrderedDict(), {}
    for k, v in state.items():
        new = k
        for pattern, repl in compiled:
            new = pattern.sub(repl, new)
        if new in out:
            raise CheckpointError(f"{where}: renaming maps both {origin[new]!r} and {k!r} to {new!r}")
        out[new], origin[new] = v, k
    return out
