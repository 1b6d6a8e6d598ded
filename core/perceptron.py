"""The book's chapter 2: a perceptron ``step(w . x + b)``, logic gates, and XOR by stacking.

A single perceptron draws one straight line through its input space, so it
can be AND, NAND or OR but never XOR (whose true points are not linearly
separable); two layers can: ``XOR(x) = AND(NAND(x), OR(x))``. The weights are
the book's hand-picked values.
"""
from __future__ import annotations

import itertools

import numpy as np

from .layers import Step
from .module import Module, Parameter

__all__ = ["Perceptron", "XORGate", "and_gate", "nand_gate", "or_gate", "xor_gate", "truth_table"]


class Perceptron(Module):
    """``y = step(x @ weight + bias)``: 1 when the weighted sum exceeds 0, else 0.

    Args:
        weights: ``(n,)`` one weight per input.
        bias: scalar threshold shift (``-theta`` in the book).

    Shapes: input ``(..., n)`` (0/1 integers are fine; they are cast to
    float64); output ``(...)`` of 0.0/1.0. The step function has zero
    derivative wherever it has one, so ``backward`` yields zero gradients;
    perceptrons are set by hand here, not trained by gradient descent.
    """

    def __init__(self, weights, bias: float):
        super().__init__()
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"Perceptron: weights must be a non-empty 1-D sequence, got shape {w.shape}")
        b = np.asarray(bias, dtype=np.float64)
        if b.ndim != 0:
            raise ValueError(f"Perceptron: bias must be a scalar, got shape {b.shape}")
        self.weight = Parameter(w)
        self.bias = Parameter(b)
        self.step = Step()
        self._x = None

    def extra_repr(self) -> str:
        return f"weights={self.weight.data.tolist()}, bias={float(self.bias.data)}"

    def forward(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"Perceptron: expected a numeric input, got dtype {x.dtype}")
        n = self.weight.data.size
        if x.ndim == 0 or x.shape[-1] != n:
            raise ValueError(f"Perceptron({self.extra_repr()}): expected input (..., {n}), got shape {x.shape}")
        x = x.astype(self.weight.data.dtype, copy=False)
        self._x = x
        return self.step(x @ self.weight.data + self.bias.data)

    def backward(self, dy):
        ds = self.step.backward(dy)  # zeros: the step function is flat
        x = self._x
        if self.weight.trainable:
            self.weight.accumulate_grad(np.tensordot(ds, x, axes=(tuple(range(ds.ndim)),) * 2))
        if self.bias.trainable:
            self.bias.accumulate_grad(np.asarray(ds.sum()))
        return ds[..., None] * self.weight.data


def and_gate() -> Perceptron:
    """``x1 AND x2`` with the book's weights (0.5, 0.5) and bias -0.7."""
    return Perceptron([0.5, 0.5], -0.7)


def nand_gate() -> Perceptron:
    """``NOT (x1 AND x2)``: the AND perceptron with every sign flipped."""
    return Perceptron([-0.5, -0.5], 0.7)


def or_gate() -> Perceptron:
    """``x1 OR x2``: AND's weights with a lower threshold (bias -0.2)."""
    return Perceptron([0.5, 0.5], -0.2)


class XORGate(Module):
    """Two-layer perceptron: ``AND(NAND(x), OR(x))`` on inputs ``(..., 2)``."""

    def __init__(self):
        super().__init__()
        self.nand = nand_gate()
        self.or_ = or_gate()
        self.and_ = and_gate()

    def forward(self, x):
        hidden = np.stack([self.nand(x), self.or_(x)], axis=-1)
        return self.and_(hidden)

    def backward(self, dy):
        dh = self.and_.backward(dy)
        return self.nand.backward(dh[..., 0]) + self.or_.backward(dh[..., 1])


def xor_gate() -> XORGate:
    """``x1 XOR x2`` by stacking NAND and OR into AND."""
    return XORGate()


def truth_table(gate: Module, n_inputs: int = 2):
    """Return ``(inputs (2**n, n) int, outputs (2**n,) int)`` of ``gate`` over all 0/1 inputs."""
    inputs = np.array(list(itertools.product((0, 1), repeat=n_inputs)), dtype=np.int64)
    return inputs, np.asarray(gate(inputs)).astype(np.int64)
