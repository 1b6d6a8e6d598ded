"""Optimizers: one general ``Optimizer`` base, ``SGD`` and the adaptive family.

``from core.optim import SGD, Adam`` — the book's ``Momentum`` is
``SGD(params, lr, momentum=0.9)``; its ``Nesterov`` adds ``nesterov=True``.
"""
from .adaptive import AdaGrad, Adam, AdamW, RMSprop
from .optimizer import Optimizer, clip_grad_norm
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSprop", "Adam", "AdamW", "clip_grad_norm"]
