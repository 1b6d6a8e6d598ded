"""Stochastic gradient descent with optional momentum, Nesterov momentum, dampening and L2 decay.

The book's ``SGD`` is ``SGD(lr)``; its ``Momentum`` is ``SGD(lr, momentum=0.9)``;
its ``Nesterov`` is ``SGD(lr, momentum=0.9, nesterov=True)``.
"""
from __future__ import annotations

from ..backend import get_array_module
from .optimizer import Optimizer, check_fraction, check_nonnegative


class SGD(Optimizer):
    """``p -= lr * d`` where ``d`` is the (momentum-filtered) gradient.

    With ``g = grad + weight_decay * p`` and momentum ``mu > 0``::

        buf = g                                   (first step)
        buf = mu * buf + (1 - dampening) * g      (later steps)
        d   = g + mu * buf  if nesterov  else  buf

    This is PyTorch's formulation (Sutskever et al. 2013 rewritten so the
    velocity is stored without the learning rate); the book's ``Momentum``
    class stores ``v = mu*v - lr*g`` instead, which is the same trajectory
    for a constant ``lr``.

    Args:
        params: parameters or param-group dicts (see ``Optimizer``).
        lr: learning rate (>= 0).
        momentum: momentum factor in [0, 1).
        dampening: scales the gradient added to the velocity (0 for Nesterov).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        weight_decay: L2 penalty coefficient added to the gradient.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        group["momentum"] = check_fraction("SGD", "momentum", group["momentum"])
        group["dampening"] = check_nonnegative("SGD", "dampening", group["dampening"])
        if group["dampening"] > 1.0:
            raise ValueError(f"SGD: invalid dampening={group['dampening']!r}; expected a number in [0, 1]")
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and (group["momentum"] == 0.0 or group["dampening"] != 0.0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0, "
                             f"got momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p, grad, state, group) -> None:
        xp = get_array_module(p.data)
        lr, mu = group["lr"], group["momentum"]
        g = self._decayed_grad(p, grad, group["weight_decay"], slot=0)
        step = self._buffer(p, 1)  # holds -lr * d; g and the velocity are never overwritten
        if mu == 0.0:
            xp.multiply(g, -lr, out=step)
        else:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                damp = 1.0 - group["dampening"]
                if damp == 1.0:
                    buf += g
                else:
                    xp.multiply(g, damp, out=step)
                    buf += step
            if group["nesterov"]:
                xp.multiply(buf, mu, out=step)
                step += g
                step *= -lr
            else:
                xp.multiply(buf, -lr, out=step)
        p.data += step
