"""One gradient-check harness for every layer and loss test (after Chainer's FunctionTestCase).

``assert_module_gradients(module, *inputs)`` promotes the module and its
floating inputs to float64, checks that forward/backward leave their
arguments untouched and return gradients of the right shape, then runs
``core.gradcheck.gradcheck`` and asserts every relative error is below ``tol``.
``assert_loss_gradients(loss, pred, target)`` does the same for a loss
object by viewing ``pred -> loss(pred, target)`` as a module.
"""
from __future__ import annotations

import numpy as np

from core.gradcheck import GradcheckReport, gradcheck
from core.module import Module


def _float64(x):
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return x.astype(np.float64)
    return x


def _assert_pure(module: Module, inputs, reset) -> None:
    """Forward must not modify its inputs; backward must not modify ``dy``; shapes must match."""
    before = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in inputs]
    if reset is not None:
        reset()
    y = np.asarray(module(*inputs))
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dy_before = dy.copy()
    dx = module.backward(dy if dy.ndim else dy[()])
    np.testing.assert_array_equal(dy, dy_before, err_msg=f"{type(module).__name__}.backward modified dy in place")
    for i, (x, x0) in enumerate(zip(inputs, before)):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, x0, err_msg=f"{type(module).__name__} modified input{i} in place")
    grads = dx if isinstance(dx, (tuple, list)) else (dx,)
    for i, x in enumerate(inputs):
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            g = np.asarray(grads[i])
            assert g.shape == x.shape, f"{type(module).__name__}: input{i} gradient {g.shape} vs input {x.shape}"
            assert g.dtype == x.dtype, f"{type(module).__name__}: input{i} gradient dtype {g.dtype} vs {x.dtype}"
    module.zero_grad()


def assert_module_gradients(module: Module, *inputs, tol: float = 1e-6, reset=None) -> GradcheckReport:
    """Finite-difference check of ``module`` (promoted to float64) on ``inputs``; returns the report."""
    if module.dtype != np.float64:
        module.astype(np.float64)
    inputs = [_float64(x) for x in inputs]
    _assert_pure(module, inputs, reset)
    report = gradcheck(module, *inputs, reset=reset)
    report.assert_ok(tol)
    return report


class LossAsModule(Module):
    """``pred -> loss(pred, target)`` with the target fixed, so that gradcheck can drive a loss."""

    def __init__(self, loss: Module, target):
        super().__init__()
        self.loss = loss
        self.target = target

    def forward(self, pred):
        return np.asarray(self.loss(pred, self.target))

    def backward(self, dy):
        return self.loss.backward(dy)


def assert_loss_gradients(loss: Module, pred, target, tol: float = 1e-6) -> GradcheckReport:
    """Finite-difference check of ``d loss(pred, target) / d pred`` in float64 (soft targets promoted too)."""
    return assert_module_gradients(LossAsModule(loss, _float64(target)), _float64(pred), tol=tol)
