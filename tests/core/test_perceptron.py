"""The book's chapter 2 perceptrons: gate truth tables, XOR by stacking, and why one layer is not enough."""
import numpy as np
import pytest

from core.perceptron import Perceptron, XORGate, and_gate, nand_gate, or_gate, truth_table, xor_gate

INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]


@pytest.mark.parametrize("make, expected", [
    (and_gate, [0, 0, 0, 1]),
    (nand_gate, [1, 1, 1, 0]),
    (or_gate, [0, 1, 1, 1]),
    (xor_gate, [0, 1, 1, 0]),
])
def test_truth_tables(make, expected):
    inputs, outputs = truth_table(make())
    assert inputs.tolist() == INPUTS
    assert outputs.tolist() == expected


def test_single_perceptron_cannot_be_xor():
    # Search a dense grid of weights and biases: AND/OR/NAND appear, XOR never does (not linearly separable).
    grid = np.linspace(-1, 1, 21)
    w1, w2, b = np.meshgrid(grid, grid, grid, indexing="ij")
    x = np.array(INPUTS, dtype=np.float64)
    sums = x[:, 0, None] * w1.reshape(-1) + x[:, 1, None] * w2.reshape(-1) + b.reshape(-1)
    tables = {tuple(col) for col in (sums > 0).astype(int).T.tolist()}
    assert {(0, 0, 0, 1), (1, 1, 1, 0), (0, 1, 1, 1)} <= tables
    assert (0, 1, 1, 0) not in tables


def test_perceptron_shapes_names_and_validation():
    gate = and_gate()
    batch = np.array([[[1, 1], [0, 1]], [[1, 0], [1, 1]]])
    np.testing.assert_array_equal(gate(batch), [[1, 0], [0, 1]])
    assert gate(np.array([1, 1])) == 1.0
    assert list(XORGate().state_dict()) == ["nand.weight", "nand.bias", "or_.weight", "or_.bias",
                                            "and_.weight", "and_.bias"]
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 2\), got shape \(4, 3\)"):
        gate(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="weights must be a non-empty 1-D"):
        Perceptron([[0.5, 0.5]], 0.1)
    with pytest.raises(ValueError, match="bias must be a scalar"):
        Perceptron([0.5, 0.5], [0.1, 0.2])


def test_step_gives_no_gradient_signal():
    # Why learning needs sigmoid/ReLU: the step function's derivative is zero, so nothing flows back.
    gate = xor_gate()
    x = np.array(INPUTS, dtype=np.float64)
    gate(x)
    dx = gate.backward(np.ones(4))
    np.testing.assert_array_equal(dx, 0.0)
    assert all(np.all(p.grad == 0) for p in gate.parameters())
