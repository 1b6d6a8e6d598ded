"""Step-indexed schedules for exploration (epsilon) and PER's importance exponent (beta)."""
from __future__ import annotations

import math


class LinearSchedule:
    """``value(t)`` moves linearly from ``start`` to ``end`` over ``duration`` steps, then holds ``end``.

    Used for epsilon-greedy exploration (``1.0 -> 0.05`` over the first 10% of
    training, as in Mnih et al. 2015) and for annealing PER's ``beta`` to 1.
    """

    def __init__(self, start: float, end: float, duration: int):
        for name, v in (("start", start), ("end", end)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"LinearSchedule: {name} must be a finite number, got {v!r}")
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise ValueError(f"LinearSchedule: duration must be an int >= 0, got {duration!r}")
        self.start, self.end, self.duration = float(start), float(end), duration

    def __call__(self, step: int) -> float:
        if step >= self.duration:
            return self.end
        return self.start + (self.end - self.start) * (max(step, 0) / self.duration)

    def __repr__(self) -> str:
        return f"LinearSchedule(start={self.start}, end={self.end}, duration={self.duration})"
