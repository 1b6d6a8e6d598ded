"""The general optimizer: parameter groups, per-parameter state, checkpointing, gradient clipping.

Every concrete optimizer (``SGD``, ``AdaGrad``, ``RMSprop``, ``Adam``/``AdamW``)
subclasses ``Optimizer`` and writes only ``_validate`` (its hyper-parameters)
and ``_update`` (one parameter's in-place update); it may also override
``_update_group`` with a fused step over a whole group (``Adam`` does). Groups,
skipping frozen or gradient-less parameters, ``zero_grad`` and ``state_dict``
live here once.
"""
from __future__ import annotations

import copy
import math
from numbers import Real

import numpy as np

from ..backend import get_array_module
from ..module import Module, Parameter


def check_nonnegative(owner: str, name: str, value, *, positive: bool = False) -> float:
    """Validate a real hyper-parameter; ``owner`` and ``name`` go into the message."""
    if getattr(value, "shape", None) == ():  # a 0-d array, as a file format may give back
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or (positive and value == 0.0):
        expected = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected {expected}")
    return value


def check_fraction(owner: str, name: str, value) -> float:
    """Validate a decay rate in [0, 1) (betas, alpha, momentum)."""
    value = check_nonnegative(owner, name, value)
    if value >= 1.0:
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected a number in [0, 1)")
    return value


class Optimizer:
    """Base class: holds ``param_groups`` and per-parameter ``state``.

    Args:
        params: an iterable of ``Parameter`` (e.g. ``model.parameters()``) or
            of dicts ``{"params": [...], "lr": ..., ...}``; keys missing from a
            group are taken from ``defaults``.
        defaults: the optimizer's hyper-parameters by name.

    ``state`` maps each ``Parameter`` to a dict of its running statistics
    (created lazily at its first update). ``state_dict`` indexes parameters by
    their position across the groups, so a checkpoint loads into a freshly
    built model whose parameters are new objects.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}
        self._scratch: dict = {}  # per-parameter work buffers: no allocation per step
        if isinstance(params, Module):
            raise TypeError(f"{self._name}: got a Module; pass module.parameters() instead")
        if isinstance(params, (Parameter, dict)):
            params = [params]
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got no parameters to optimize (an empty list); "
                             "pass model.parameters() or a list of param-group dicts")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: dict) -> None:
        """Append a group ``{"params": [...], <hyper-parameter>: value, ...}``.

        Useful for fine-tuning: unfreeze a backbone later and add its
        parameters with a smaller ``lr``. A parameter may belong to one group only.
        """
        if not isinstance(group, dict):
            raise TypeError(f"{self._name}: a param group must be a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{self._name}: param group has no 'params' key (keys: {sorted(group)})")
        params = group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, Module):
            raise TypeError(f"{self._name}: group 'params' is a Module; pass module.parameters() instead")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{self._name}: params[{i}] is {type(p).__name__}, expected a core.module.Parameter")
        if not params:
            raise ValueError(f"{self._name}: got no parameters to optimize in param group "
                             f"{len(self.param_groups)} (an empty 'params' list)")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{self._name}: a parameter appears twice in the param groups; "
                             "each parameter may belong to exactly one group")
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        self._validate(full)
        full["params"] = params
        self.param_groups.append(full)

    def _validate(self, group: dict) -> None:
        """Check (and normalise in place) one group's hyper-parameters; subclasses extend."""
        group["lr"] = check_nonnegative(self._name, "lr", group["lr"])
        if "weight_decay" in group:
            group["weight_decay"] = check_nonnegative(self._name, "weight_decay", group["weight_decay"])

    # -------------------------------------------------------------------- step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (``None``, or zero-filled in place when ``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self) -> None:
        """Update every trainable parameter that has a gradient, in place."""
        for group in self.param_groups:
            active = []
            for p in group["params"]:
                if p.grad is None or not p.trainable:
                    continue
                if p.grad.shape != p.data.shape:
                    raise ValueError(f"{self._name}.step: parameter of shape {p.data.shape} "
                                     f"has a gradient of shape {p.grad.shape}")
                active.append(p)
            if active:
                self._update_group(group, active)

    def _update_group(self, group: dict, params: list) -> None:
        """Update ``params`` (the members of ``group`` that have a gradient) one at a time.

        Subclasses may override this with a fused path over the whole group;
        it must give the same results as calling ``_update`` on each parameter.
        """
        for p in params:
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {}
            self._update(p, p.grad, state, group)

    def _update(self, p: Parameter, grad, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{self._name} must define _update()")

    def _buffer(self, p: Parameter, slot: int = 0):
        """A scratch array shaped like ``p`` (reused across steps; contents undefined)."""
        bufs = self._scratch.get(p)
        if bufs is None:
            bufs = self._scratch[p] = []
        while len(bufs) <= slot:
            bufs.append(None)
        buf = bufs[slot]
        if buf is None or buf.shape != p.data.shape or buf.dtype != p.data.dtype:
            buf = bufs[slot] = get_array_module(p.data).empty_like(p.data)
        return buf

    def _decayed_grad(self, p: Parameter, grad, weight_decay: float, slot: int = 0):
        """``grad + weight_decay * p`` (L2 penalty) without touching ``p.grad``."""
        if weight_decay == 0.0:
            return grad
        xp = get_array_module(p.data)
        out = self._buffer(p, slot)
        xp.multiply(p.data, weight_decay, out=out)
        out += grad
        return out

    # ------------------------------------------------------------------- state
    def _indexed_params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [indices]}]}``.

        Arrays are copies (later steps update the live state in place), so the
        snapshot stays valid; ``load_state_dict`` restores it exactly.
        """
        index = {id(p): i for i, p in enumerate(self._indexed_params())}
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (v.copy() if hasattr(v, "shape") else copy.deepcopy(v))
                                       for k, v in s.items()}
        groups = []
        for g in self.param_groups:
            entry = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            entry["params"] = [index[id(p)] for p in g["params"]]
            groups.append(entry)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and running state saved by ``state_dict``.

        The optimizer must have been built over the same parameter layout
        (same number of groups, same sizes and shapes). Saved arrays are cast
        to each parameter's dtype; keys may be ints or their strings (as after
        a round trip through a file format with string keys).
        """
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError(f"{self._name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: checkpoint has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{self._name}.load_state_dict: param group {gi} has {len(saved['params'])} "
                                 f"parameters in the checkpoint, {len(group['params'])} here")
        params = self._indexed_params()
        new_state = {}
        for key, entries in dict(state_dict["state"]).items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{self._name}.load_state_dict: state key {key!r} is not a parameter index") from None
            if not 0 <= i < len(params):
                raise ValueError(f"{self._name}.load_state_dict: state for parameter index {i}, "
                                 f"but this optimizer has {len(params)} parameters")
            p = params[i]
            xp = get_array_module(p.data)
            restored = {}
            for name, value in entries.items():
                kind = getattr(getattr(value, "dtype", None), "kind", None)
                if kind == "f":  # a running statistic shaped like the parameter
                    if tuple(value.shape) != tuple(p.data.shape):
                        raise ValueError(f"{self._name}.load_state_dict: state {name!r} of parameter {i} has "
                                         f"shape {tuple(value.shape)}, the parameter has {tuple(p.data.shape)}")
                    restored[name] = xp.array(value, dtype=p.data.dtype, copy=True)
                elif kind in ("i", "u") and np.ndim(value) == 0:  # a step count a file format made 0-d
                    restored[name] = int(value)
                else:
                    restored[name] = copy.deepcopy(value)
            new_state[p] = restored
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            full = {k: v for k, v in group.items() if k != "params"}  # keys an older checkpoint lacks
            full.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
            self._validate(full)
            full["params"] = group["params"]
            new_groups.append(full)
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, g in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} params, {hyper}")
        return "\n".join(lines) + "\n)"


def clip_grad_norm(params, max_norm: float, eps: float = 1e-6, norm_type: float = 2.0) -> float:
    """Scale gradients in place so their global norm is at most ``max_norm``; return the norm before.

    The norm is taken over all gradients together (as if concatenated), like
    ``torch.nn.utils.clip_grad_norm_``: grads are multiplied by
    ``max_norm / (total_norm + eps)`` when that factor is below 1.
    Parameters without a gradient are ignored. A non-finite norm is returned
    without touching the gradients, so a NaN guard can see and skip the step.

    Args:
        params: a ``Parameter`` or an iterable of them.
        max_norm: the largest allowed norm (> 0).
        eps: added to the norm in the denominator (avoids division by zero).
        norm_type: 2.0 (Euclidean) or ``inf`` (largest absolute entry).
    """
    if isinstance(params, Module):
        raise TypeError("clip_grad_norm: got a Module; pass module.parameters() instead")
    if isinstance(params, Parameter):
        params = [params]
    max_norm = check_nonnegative("clip_grad_norm", "max_norm", max_norm, positive=True)
    norm_type = float(norm_type)
    if norm_type not in (2.0, math.inf):
        raise ValueError(f"clip_grad_norm: norm_type must be 2.0 or inf, got {norm_type}")
    grads = []
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_norm: params[{i}] is {type(p).__name__}, expected a Parameter")
        if p.grad is not None:
            grads.append(p.grad)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        xp = get_array_module(grads[0])
        total = math.sqrt(sum(float(xp.vdot(g.ravel(), g.ravel())) for g in grads))
    if not math.isfinite(total):
        return total
    coef = max_norm / (total + eps)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total
