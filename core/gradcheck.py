"""Finite-difference gradient checks for Modules (the book's "gradient check", ch. 5.7).

``gradcheck(module, *inputs)`` reduces the module's output to a scalar
``L = sum(w * module(*inputs))`` with a fixed random ``w``, runs
``module.backward(w)`` once, and compares the analytic gradient of every
floating input and every trainable parameter with central differences of
``L``. Everything must be float64: in float32 the finite-difference error
(``~ eps_machine / eps``) would swamp the comparison.

Relative error (normwise, per array)::

    err(a, n) = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|)      (0 if both are 0)

Dividing by the array's largest entry instead of each entry's own size keeps
entries whose true gradient is ~0 (dead ReLUs, ignored labels) from turning
round-off into huge "relative" errors, while any error that matters at the
gradient's own scale still shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import to_numpy
from .module import Module

__all__ = ["numerical_gradient", "relative_error", "gradcheck", "GradcheckReport"]


def numerical_gradient(f, x, eps: float = 1e-6):
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every entry of ``x``.

    ``f(x) -> float`` is evaluated with ``x`` perturbed *in place* (so a module
    holding ``x`` as a parameter sees the change); ``x`` is restored exactly.
    Returns an array of ``x``'s shape (float64).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        original = x[idx].copy()
        x[idx] = original + eps
        f_plus = float(f(x))
        x[idx] = original - eps
        f_minus = float(f(x))
        x[idx] = original
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(analytic, numeric) -> float:
    """Normwise relative error ``max|a - n| / max(max|a|, max|n|)`` (0 when both are all zero)."""
    a = np.asarray(to_numpy(analytic), dtype=np.float64)
    n = np.asarray(to_numpy(numeric), dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"relative_error: analytic gradient shape {a.shape} differs from numeric {n.shape}")
    if a.size == 0:
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(n).all()):
        return float("inf")
    scale = max(float(np.abs(a).max()), float(np.abs(n).max()))
    return 0.0 if scale == 0.0 else float(np.abs(a - n).max() / scale)


@dataclass
class GradcheckReport:
    """Worst relative error per checked array: ``"input0"``, ``"input1"``, ... and parameter names."""

    errors: dict = field(default_factory=dict)
    analytic: dict = field(default_factory=dict, repr=False)
    numeric: dict = field(default_factory=dict, repr=False)

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def assert_ok(self, tol: float = 1e-6) -> None:
        """Raise ``AssertionError`` listing every array whose error exceeds ``tol``."""
        bad = {k: v for k, v in self.errors.items() if not v <= tol}
        if bad:
            detail = ", ".join(f"{k}: {v:.3g}" for k, v in bad.items())
            raise AssertionError(f"gradcheck failed (tol={tol:g}): {detail}")


def _check_float64(module: Module, inputs) -> list[int]:
    for name, p in module.named_parameters():
        if p.data.dtype != np.float64:
            raise TypeError(
                f"gradcheck: parameter {name!r} of {type(module).__name__} is {p.data.dtype}; "
                "gradient checks need float64 (module.astype(np.float64))"
            )
    checked = []
    for i, x in enumerate(inputs):
        kind = getattr(getattr(x, "dtype", None), "kind", None)
        if kind == "f":
            if x.dtype != np.float64:
                raise TypeError(f"gradcheck: input{i} is {x.dtype}; gradient checks need float64 inputs")
            checked.append(i)
    return checked


def gradcheck(module: Module, *inputs, eps: float = 1e-6, reset=None, seed: int = 20_250_601) -> GradcheckReport:
    """Compare ``module.backward`` with central differences; return a ``GradcheckReport``.

    Args:
        module: a float64 ``Module`` whose ``forward(*inputs)`` returns an array and
            whose ``backward(dy)`` returns the input gradient (a tuple for several inputs).
        inputs: float64 arrays are checked; other arguments (integer labels...) pass through.
        eps: finite-difference step.
        reset: called before every forward, for modules with randomness
            (e.g. ``lambda: setattr(dropout, "rng", np.random.default_rng(0))``).
        seed: seed of the projection weights ``w`` (deliberately not a seed tests
            use for their inputs: ``w == x`` would make e.g. ``sum(x * batchnorm(x))``
            nearly flat and the check meaningless).

    The module's parameters and buffers (BatchNorm running statistics) are
    restored afterwards, and its parameters' ``grad`` are left as before.
    Raises ``TypeError`` for non-float64 data and ``RuntimeError`` if two
    identical forward passes differ (randomness without ``reset``).
    """
    checked = _check_float64(module, inputs)
    params = list(module.named_parameters(trainable_only=True))
    # Buffers (BatchNorm running statistics) change on every training-mode pass; parameters
    # are restored exactly by numerical_gradient itself.
    saved_buffers = [(m, k, np.array(b, copy=True)) for m in module.modules()
                     for k, b in m._buffers.items() if b is not None]
    saved_grads = {name: p.grad for name, p in params}
    inputs = [np.array(x, copy=True) if i in checked else x for i, x in enumerate(inputs)]

    def run():
        if reset is not None:
            reset()
        return np.asarray(module(*inputs))

    try:
        y = run()
        if not np.array_equal(y, run(), equal_nan=True):
            raise RuntimeError(
                f"gradcheck: two forward passes of {type(module).__name__} on the same input differ; "
                "pass reset= to re-seed its randomness before each pass"
            )
        w = np.random.default_rng(seed).standard_normal(y.shape)

        def objective(_=None) -> float:
            return float(np.sum(w * run()))

        for _, p in params:
            p.grad = None
        run()
        dx = module.backward(w if w.ndim else w[()])
        if not isinstance(dx, (tuple, list)):
            dx = (dx,)
        report = GradcheckReport()
        for i in checked:
            analytic = dx[i] if i < len(dx) else None
            if analytic is None:
                raise RuntimeError(f"gradcheck: {type(module).__name__}.backward returned no gradient for input{i}")
            analytic = to_numpy(analytic)
            numeric = numerical_gradient(objective, inputs[i], eps)
            key = f"input{i}"
            report.errors[key] = relative_error(analytic, numeric)
            report.analytic[key], report.numeric[key] = analytic, numeric
        analytic_params = {name: (None if p.grad is None else to_numpy(p.grad).copy()) for name, p in params}
        for name, p in params:
            numeric = numerical_gradient(objective, p.data, eps)
            analytic = analytic_params[name]
            if analytic is None:
                analytic = np.zeros_like(numeric)  # no gradient written: only right if the true one is 0
            report.errors[name] = relative_error(analytic, numeric)
            report.analytic[name], report.numeric[name] = analytic, numeric
        return report
    finally:
        for m, k, b in saved_buffers:
            setattr(m, k, b)
        for name, p in params:
            p.grad = saved_grads[name]
