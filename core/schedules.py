"""Learning-rate schedules: objects mapping a step (or epoch) count to a learning rate per param group.

Each schedule records the groups' base learning rates when it is built (as
``group["initial_lr"]``, shared by every schedule on that optimizer), writes
``lr_at(0)`` into the optimizer at once, and on every ``step()`` advances its
count ``t`` and writes ``lr_at(t)``. ``lr_at`` is a pure function of ``t``
except for ``ReduceLROnPlateau``, whose rate depends on the metric history.
Formulas and defaults follow ``torch.optim.lr_scheduler``.

Typical use (per epoch)::

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = LinearWarmup(opt, warmup_steps=5, after=CosineAnnealingLR(opt, T_max=95))
    for epoch in range(100):
        train_one_epoch(...)
        sched.step()
"""
from __future__ import annotations

import bisect
import math
from numbers import Integral, Real


def _check_int(owner: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected an integer >= {minimum}")
    return int(value)


def _check_real(owner: str, name: str, value, *, low: float = 0.0, low_open: bool = False,
                high: float | None = None, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected a finite number")
    value = float(value)
    bad_low = value <= low if low_open else value < low
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected a number {lo}{hi}")
    return value


class LRSchedule:
    """Base class: ``lr_at(t)`` per group, ``step()``, ``lr``, ``state_dict()``.

    Args:
        optimizer: a ``core.optim`` optimizer (anything with ``param_groups``,
            a list of dicts holding ``"lr"``).
    """

    #: True when ``lr_at(t)`` is a function of ``t`` alone.
    pure = True

    def __init__(self, optimizer):
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) and "lr" in g for g in groups):
            raise TypeError(f"{self._name}: expected an optimizer with param_groups (dicts holding 'lr'), "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for g in groups:
            g.setdefault("initial_lr", float(g["lr"]))
        self.base_lrs = [float(g["initial_lr"]) for g in groups]
        self.t = 0
        self._last_lrs = [float(g["lr"]) for g in groups]

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _start(self) -> None:
        """Write ``lr_at(0)``; subclasses call this at the end of ``__init__`` once validated."""
        self._apply(self.lr_at(0))

    # ------------------------------------------------------------------ core
    def _factor(self, t: int) -> float:
        """Multiplier on the base rate at step ``t`` (for the schedules that are one)."""
        raise NotImplementedError(f"{self._name} must define _factor() or lr_at()")

    def lr_at(self, t: int) -> list:
        """Learning rate of each param group after ``t`` calls of ``step()``."""
        t = _check_int(f"{self._name}.lr_at", "t", t, 0)
        f = self._factor(t)
        return [base * f for base in self.base_lrs]

    def step(self, metric=None) -> None:
        """Advance one step (or epoch) and write the new rates into the optimizer.

        ``metric`` is used by ``ReduceLROnPlateau`` only; other schedules ignore it.
        """
        self.t += 1
        self._apply(self.lr_at(self.t))

    def _apply(self, lrs) -> None:
        self._last_lrs = [float(v) for v in lrs]
        for g, v in zip(self.optimizer.param_groups, self._last_lrs):
            g["lr"] = v

    @property
    def lr(self):
        """The current learning rate: a float for one param group, else a list per group."""
        return self._last_lrs[0] if len(self._last_lrs) == 1 else list(self._last_lrs)

    def get_last_lr(self) -> list:
        """The current learning rate of every param group, as a list."""
        return list(self._last_lrs)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"t": self.t, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the count (and base rates) and write the matching rates into the optimizer."""
        if not isinstance(state, dict) or "t" not in state:
            raise ValueError(f"{self._name}.load_state_dict: expected a dict with 't', got {state!r:.80}")
        base = [float(b) for b in state.get("base_lrs", self.base_lrs)]
        if len(base) != len(self.optimizer.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: {len(base)} base rates in the state, "
                             f"the optimizer has {len(self.optimizer.param_groups)} param groups")
        self.t = int(state["t"])
        self.base_lrs = base
        self._apply(self.lr_at(self.t))

    def __repr__(self) -> str:
        return f"{self._name}(t={self.t}, lr={self.lr})"


class StepLR(LRSchedule):
    """``lr = base * gamma ** (t // step_size)``: decay by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size = _check_int("StepLR", "step_size", step_size, 1)
        self.gamma = _check_real("StepLR", "gamma", gamma, low_open=True)
        self._start()

    def _factor(self, t):
        return self.gamma ** (t // self.step_size)


class MultiStepLR(LRSchedule):
    """``lr = base * gamma ** (number of milestones <= t)``; a repeated milestone counts twice."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        super().__init__(optimizer)
        try:
            milestones = list(milestones)
        except TypeError:
            raise ValueError(f"MultiStepLR: milestones must be a list of step counts, got {milestones!r}") from None
        self.milestones = sorted(_check_int("MultiStepLR", "milestone", m, 1) for m in milestones)
        self.gamma = _check_real("MultiStepLR", "gamma", gamma, low_open=True)
        self._start()

    def _factor(self, t):
        return self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(LRSchedule):
    """``lr = base * gamma ** t``."""

    def __init__(self, optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = _check_real("ExponentialLR", "gamma", gamma, low_open=True)
        self._start()

    def _factor(self, t):
        return self.gamma ** t


class CosineAnnealingLR(LRSchedule):
    """``lr = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2`` (Loshchilov & Hutter 2017, SGDR).

    The rate falls from ``base`` to ``eta_min`` over ``T_max`` steps; past
    ``T_max`` it rises again along the same cosine (no restart jump), as in PyTorch.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        super().__init__(optimizer)
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _check_real("CosineAnnealingLR", "eta_min", eta_min)
        self._start()

    def lr_at(self, t):
        t = _check_int(f"{self._name}.lr_at", "t", t, 0)
        c = (1.0 + math.cos(math.pi * t / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class LinearWarmup(LRSchedule):
    """Ramp linearly from ``start_factor * base`` to ``base`` over ``warmup_steps``, then hand over.

    ``lr = base * (start_factor + (1 - start_factor) * t / warmup_steps)`` for
    ``t < warmup_steps`` (Goyal et al. 2017); from then on the rate is
    ``base``, or that of ``after`` — another schedule on the same optimizer,
    whose own count starts at 0 when the warm-up ends. Step only the warm-up
    object: it drives ``after`` (passing ``metric`` on to a ``ReduceLROnPlateau``).
    """

    def __init__(self, optimizer, warmup_steps: int, after: LRSchedule | None = None,
                 start_factor: float = 1.0 / 3.0):
        super().__init__(optimizer)
        self.warmup_steps = _check_int("LinearWarmup", "warmup_steps", warmup_steps, 1)
        self.start_factor = _check_real("LinearWarmup", "start_factor", start_factor, low_open=True, high=1.0)
        if after is not None:
            if not isinstance(after, LRSchedule):
                raise TypeError(f"LinearWarmup: after must be a schedule, got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: after must be built on the same optimizer as the warm-up")
            if isinstance(after, LinearWarmup):
                raise ValueError("LinearWarmup: after cannot itself be a LinearWarmup")
        self.after = after
        self.pure = after is None or after.pure
        self._start()

    def lr_at(self, t):
        t = _check_int(f"{self._name}.lr_at", "t", t, 0)
        if t < self.warmup_steps:
            f = self.start_factor + (1.0 - self.start_factor) * t / self.warmup_steps
            return [base * f for base in self.base_lrs]
        if self.after is None:
            return list(self.base_lrs)
        return self.after.lr_at(t - self.warmup_steps)

    def step(self, metric=None) -> None:
        self.t += 1
        if self.after is None or self.t < self.warmup_steps:
            self._apply(self.lr_at(self.t))
            return
        k = self.t - self.warmup_steps  # the hand-over step is the after-schedule's t = 0
        if self.after.pure:
            self.after.t = k
            self.after._apply(self.after.lr_at(k))
        elif k == 0:  # a metric-driven schedule starts from the rates it recorded when built
            self.after._apply(self.after.get_last_lr())
        else:
            self.after.step(metric)
        self._last_lrs = self.after.get_last_lr()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["after"] = None if self.after is None else self.after.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.after is None:
            super().load_state_dict(state)
            return
        if state.get("after") is None:
            raise ValueError("LinearWarmup.load_state_dict: the state has no 'after' schedule, this one has")
        self.after.load_state_dict(state["after"])  # writes the after-schedule's rates
        if not isinstance(state, dict) or "t" not in state:
            raise ValueError("LinearWarmup.load_state_dict: expected a dict with 't'")
        self.t = int(state["t"])
        self.base_lrs = [float(b) for b in state.get("base_lrs", self.base_lrs)]
        if self.t < self.warmup_steps:
            self._apply(self.lr_at(self.t))
        else:
            self._last_lrs = self.after.get_last_lr()


class ReduceLROnPlateau(LRSchedule):
    """Multiply the rate by ``factor`` when the metric stops improving for more than ``patience`` steps.

    A step improves when the metric beats the best seen by ``threshold``
    (relative: ``best * (1 -/+ threshold)``; absolute: ``best -/+ threshold``).
    After ``patience + 1`` steps without improvement every group's rate
    becomes ``max(lr * factor, min_lr)`` and ``cooldown`` steps follow in
    which no bad steps are counted. Pass the metric to ``step(metric)``.

    Args:
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: multiplier in (0, 1). patience: tolerated bad steps.
        threshold, threshold_mode: what counts as an improvement (``"rel"``/``"abs"``).
        cooldown: steps to wait after a reduction. min_lr: floor (one or per group).
        eps: reductions smaller than this are skipped.
    """

    pure = False

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0.0, eps: float = 1e-8):
        super().__init__(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _check_real("ReduceLROnPlateau", "factor", factor, low_open=True, high=1.0, high_open=True)
        self.patience = _check_int("ReduceLROnPlateau", "patience", patience, 0)
        self.threshold = _check_real("ReduceLROnPlateau", "threshold", threshold)
        self.cooldown = _check_int("ReduceLROnPlateau", "cooldown", cooldown, 0)
        self.eps = _check_real("ReduceLROnPlateau", "eps", eps)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"ReduceLROnPlateau: min_lr has {len(min_lr)} entries, "
                                 f"the optimizer has {n} param groups")
            self.min_lrs = [_check_real("ReduceLROnPlateau", "min_lr", v) for v in min_lr]
        else:
            self.min_lrs = [_check_real("ReduceLROnPlateau", "min_lr", min_lr)] * n
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_steps = 0
        self.cooldown_counter = 0

    def lr_at(self, t):
        raise TypeError("ReduceLROnPlateau.lr_at: the rate depends on the metric history, not on t alone; "
                        "use .lr for the current rate")

    def _improves(self, metric: float) -> bool:
        if self.threshold_mode == "rel":
            scale = 1.0 - self.threshold if self.mode == "min" else 1.0 + self.threshold
            ref = self.best * scale
        else:
            ref = self.best - self.threshold if self.mode == "min" else self.best + self.threshold
        return metric < ref if self.mode == "min" else metric > ref

    def step(self, metric=None) -> None:
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step: needs the monitored metric, e.g. step(val_loss)")
        metric = float(metric)
        self.t += 1
        if self._improves(metric):
            self.best = metric
            self.num_bad_steps = 0
        else:
            self.num_bad_steps += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_steps = 0
        if self.num_bad_steps > self.patience:
            lrs = []
            for old, floor in zip(self._last_lrs, self.min_lrs):
                new = max(old * self.factor, floor)
                lrs.append(new if old - new > self.eps else old)
            self._apply(lrs)
            self.cooldown_counter = self.cooldown
            self.num_bad_steps = 0

    def state_dict(self) -> dict:
        return {"t": self.t, "base_lrs": list(self.base_lrs), "lrs": list(self._last_lrs), "best": self.best,
                "num_bad_steps": self.num_bad_steps, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in ("t", "lrs", "best", "num_bad_steps", "cooldown_counter") if k not in state]
        if missing:
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: state lacks {', '.join(missing)}")
        lrs = [float(v) for v in state["lrs"]]
        if len(lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: {len(lrs)} rates in the state, "
                             f"the optimizer has {len(self.optimizer.param_groups)} param groups")
        self.t = int(state["t"])
        self.base_lrs = [float(b) for b in state.get("base_lrs", self.base_lrs)]
        self.best = float(state["best"])
        self.num_bad_steps = int(state["num_bad_steps"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self._apply(lrs)
