"""The module contract: ``Parameter``, ``Module``, ``Sequential`` and ``Residual``.

The book's layers (``forward`` caches, ``backward`` returns the input gradient)
generalised into a tree with PyTorch-compatible dotted names, so that a
``state_dict`` from torch/torchvision loads directly and vice versa.
"""
from __future__ import annotations

import fnmatch
from collections import OrderedDict
from typing import Iterator, NamedTuple

import numpy as np

from .backend import DEFAULT_DTYPE, get_array_module


class Parameter:
    """A trainable array: ``data``, its accumulated ``grad`` and a ``trainable`` flag.

    ``grad`` is ``None`` until a backward pass accumulates into it; optimizers
    skip parameters whose ``grad`` is ``None`` or that are not trainable.
    """

    __slots__ = ("data", "grad", "trainable")

    def __init__(self, data, trainable: bool = True):
        xp = get_array_module(data)
        data = xp.asarray(data)
        if data.dtype.kind != "f":
            data = data.astype(DEFAULT_DTYPE)
        self.data = data
        self.grad = None
        self.trainable = bool(trainable)

    def accumulate_grad(self, g) -> None:
        """Add ``g`` to ``grad`` (gradients from several uses of a parameter sum)."""
        if self.grad is None:
            self.grad = g.astype(self.data.dtype, copy=True)
        else:
            self.grad += g

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __repr__(self) -> str:
        flag = "" if self.trainable else ", trainable=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{flag})"


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match."""

    missing: list
    unexpected: list


class Module:
    """Base class of every layer and model.

    Subclasses assign ``Parameter``s, sub-``Module``s and buffers as attributes;
    they are registered in assignment order, which fixes the dotted names
    (``layer1.0.conv1.weight``) used by ``state_dict``.

    ``forward(x)`` computes the output and caches what ``backward`` needs;
    ``backward(dy)`` accumulates into each trainable ``param.grad`` and returns
    the gradient with respect to the input.
    """

    #: Set False on a root module when nobody needs d(loss)/d(input); composite
    #: modules then stop their backward below the lowest trainable child.
    requires_input_grad = True

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        params, modules, buffers = self._parameters, self._modules, self._buffers
        if isinstance(value, Parameter):
            modules.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in buffers:
            buffers[name] = value
        else:
            if name in params or name in modules:
                if value is not None:
                    raise TypeError(
                        f"{type(self).__name__}.{name} holds a "
                        f"{'Parameter' if name in params else 'Module'}; "
                        f"cannot replace it with {type(value).__name__}"
                    )
                params.pop(name, None)
                modules.pop(name, None)
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value) -> None:
        """Register non-trainable state (e.g. BatchNorm running statistics)."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- compute
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} must define backward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --------------------------------------------------------------- traversal
    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_modules(self, prefix: str = ""):
        """Yield ``(dotted_name, module)`` for this module and every descendant."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(kids))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = "", trainable_only: bool = False):
        """Yield ``(dotted_name, Parameter)``, each shared parameter once."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for k, p in mod._parameters.items():
                if id(p) in seen or (trainable_only and not p.trainable):
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{k}" if mod_name else k), p

    def parameters(self, trainable_only: bool = False) -> list:
        return [p for _, p in self.named_parameters(trainable_only=trainable_only)]

    def named_buffers(self, prefix: str = ""):
        for mod_name, mod in self.named_modules(prefix):
            for k, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{k}" if mod_name else k), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters(trainable_only))

    def has_trainable(self) -> bool:
        return any(True for _ in self.named_parameters(trainable_only=True))

    # ------------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters then buffers of every module, by dotted name, as copies."""
        out = OrderedDict()
        for mod_name, mod in self.named_modules():
            for k, p in mod._parameters.items():
                out[f"{mod_name}.{k}" if mod_name else k] = p.data.copy()
            for k, b in mod._buffers.items():
                if b is not None:
                    out[f"{mod_name}.{k}" if mod_name else k] = np.array(b, copy=True)
        return out

    def load_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from ``state`` (name -> array) into this module.

        Values are cast to each parameter's dtype. With ``strict=True`` any
        missing, unexpected or mis-shaped key raises ``ValueError`` naming all
        of them; with ``strict=False`` mis-shaped keys still raise, and the
        missing/unexpected names are returned.
        """
        targets = {}
        for mod_name, mod in self.named_modules():
            for k in list(mod._parameters) + [b for b, v in mod._buffers.items() if v is not None]:
                targets[f"{mod_name}.{k}" if mod_name else k] = (mod, k)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        mis_shaped = []
        for name, (mod, k) in targets.items():
            if name not in state:
                continue
            current = getattr(mod, k)
            current = current.data if isinstance(current, Parameter) else current
            new = np.asarray(state[name])
            if tuple(np.shape(current)) != tuple(new.shape):
                mis_shaped.append(f"{name}: checkpoint {tuple(new.shape)} vs model {tuple(np.shape(current))}")
        if mis_shaped or (strict and (missing or unexpected)):
            parts = []
            if missing:
                parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
            if unexpected:
                parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
            if mis_shaped:
                parts.append(f"shape mismatches ({len(mis_shaped)}): {'; '.join(mis_shaped[:20])}")
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + " | ".join(parts))
        for name, (mod, k) in targets.items():
            if name not in state:
                continue
            current = getattr(mod, k)
            if isinstance(current, Parameter):
                xp = get_array_module(current.data)
                current.data = xp.asarray(state[name], dtype=current.data.dtype).copy()
                current.grad = None
            else:
                dtype = np.asarray(current).dtype
                setattr(mod, k, np.array(state[name], dtype=dtype, copy=True))
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ modes
    #: When True, ``train()`` leaves this module in eval mode: fine-tuning keeps the
    #: BatchNorm layers of a frozen backbone on their pretrained running statistics.
    keep_eval = False

    def train(self, mode: bool = True) -> "Module":
        """Switch Dropout/BatchNorm behaviour; ``train(False)`` equals ``eval()``.

        Modules with ``keep_eval = True`` stay in eval mode either way.
        """
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode) and not m.keep_eval)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def _select_parameters(self, patterns, verb: str):
        named = list(self.named_parameters())
        if not patterns:
            return [p for _, p in named]
        chosen = []
        for pat in patterns:
            if isinstance(pat, Module):
                chosen.extend(pat.parameters())
                continue
            if not isinstance(pat, str):
                raise TypeError(f"{verb}: patterns must be str or Module, got {type(pat).__name__}")
            hits = [p for n, p in named
                    if fnmatch.fnmatchcase(n, pat) or n.startswith(pat + ".") or n == pat]
            if not hits:
                sample = ", ".join(n for n, _ in named[:8])
                raise ValueError(
                    f"{verb}: pattern {pat!r} matches no parameter of {type(self).__name__}; "
                    f"names look like: {sample}{' ...' if len(named) > 8 else ''}"
                )
            chosen.extend(hits)
        return chosen

    def freeze(self, *patterns) -> "Module":
        """Mark parameters not trainable: all, or those matching glob/prefix patterns or modules."""
        for p in self._select_parameters(patterns, "freeze"):
            p.trainable = False
            p.grad = None
        return self

    def unfreeze(self, *patterns) -> "Module":
        """Mark parameters trainable again (same pattern rules as ``freeze``)."""
        for p in self._select_parameters(patterns, "unfreeze"):
            p.trainable = True
        return self

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def astype(self, dtype) -> "Module":
        """Cast every parameter and floating buffer to ``dtype`` in place (e.g. float16 inference)."""
        dtype = np.dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                p.data = p.data.astype(dtype)
                p.grad = None
            for k, b in list(m._buffers.items()):
                if b is not None and np.asarray(b).dtype.kind == "f":
                    setattr(m, k, np.asarray(b).astype(dtype))
        return self

    @property
    def dtype(self):
        for p in self.parameters():
            return p.data.dtype
        return np.dtype(DEFAULT_DTYPE)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for k, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({k}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Children applied in order; names are ``"0"``, ``"1"``, ... (or the keys of an OrderedDict).

    ``backward`` runs the children's backward in reverse. When
    ``requires_input_grad`` is False it stops below the lowest child that holds
    a trainable parameter: a frozen backbone costs no backward work.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: child {name!r} is {type(m).__name__}, expected a Module")
            setattr(self, name, m)

    def append(self, module: Module) -> "Sequential":
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        return mods[idx]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, dy):
        return backward_chain(list(self._modules.values()), dy, self.requires_input_grad)


class Residual(Module):
    """``y = activation(body(x) + shortcut(x))`` — a ResNet-style skip connection.

    ``shortcut=None`` is the identity. In backward the gradient reaching the
    sum flows into both paths and their input gradients add (He et al. 2016).
    """

    def __init__(self, body: Module, shortcut: Module | None = None, activation: Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.activation = activation

    def forward(self, x):
        y = self.body(x)
        s = x if self.shortcut is None else self.shortcut(x)
        if y.shape != s.shape:
            raise ValueError(
                f"Residual: body output {y.shape} and shortcut output {s.shape} differ; "
                "give a shortcut (e.g. 1x1 conv) that matches the body's shape"
            )
        out = y + s
        return out if self.activation is None else self.activation(out)

    def backward(self, dy):
        if self.activation is not None:
            dy = self.activation.backward(dy)
        dx_body = self.body.backward(dy)
        dx_short = dy if self.shortcut is None else self.shortcut.backward(dy)
        return dx_body + dx_short


def backward_chain(modules, dy, need_input_grad: bool = True):
    """Backward through ``modules`` that were applied in order (``Sequential``'s backward).

    Without ``need_input_grad`` it stops below the lowest module holding a
    trainable parameter and asks that one for parameter gradients only
    (returning ``None``): a frozen backbone costs no backward work.
    """
    if need_input_grad:
        for m in reversed(modules):
            dy = m.backward(dy)
        return dy
    stop = next((i for i, m in enumerate(modules) if m.has_trainable()), None)
    if stop is None:
        return None
    for m in reversed(modules[stop + 1:]):
        dy = m.backward(dy)
    lowest = modules[stop]
    own = lowest.__dict__.get("requires_input_grad")
    lowest.requires_input_grad = False
    try:
        lowest.backward(dy)
    finally:
        if own is None:
            del lowest.__dict__["requires_input_grad"]
        else:
            lowest.requires_input_grad = own
    return None
