"""The gradient checker itself: it must pass right gradients and catch wrong ones."""
import numpy as np
import pytest

from core.gradcheck import gradcheck, numerical_gradient, relative_error
from core.layers import BatchNorm1d, Dropout, Linear, ReLU
from core.module import Module, Parameter


def test_numerical_gradient_central_difference():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_gradient(lambda v: np.sum(v ** 3), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored exactly
    assert numerical_gradient(lambda v: float(v) ** 2, np.array(3.0)) == pytest.approx(6.0)


def test_relative_error_is_normwise():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    # a tiny absolute slip on a near-zero entry does not count as a huge relative error
    assert relative_error(np.array([1.0, 1e-12]), np.array([1.0, 2e-12])) < 1e-11
    assert relative_error(np.array([1.0, 0.5]), np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert relative_error(np.array([np.nan]), np.array([1.0])) == float("inf")
    with pytest.raises(ValueError, match="shape"):
        relative_error(np.zeros(2), np.zeros(3))


class WrongLinear(Linear):
    """A classic slip: the weight gradient off by a factor of 2."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.weight.grad *= 2
        return dx


class WrongReLU(ReLU):
    """Forgets the mask in backward."""

    def backward(self, dy):
        return dy


def test_gradcheck_catches_wrong_parameter_gradient():
    layer = WrongLinear(3, 2, rng=0, dtype=np.float64)
    report = gradcheck(layer, np.random.default_rng(0).standard_normal((4, 3)))
    assert report.errors["weight"] > 0.1 and report.errors["input0"] < 1e-8
    with pytest.raises(AssertionError, match="weight"):
        report.assert_ok()


def test_gradcheck_catches_wrong_input_gradient():
    report = gradcheck(WrongReLU(), np.array([[-1.0, 2.0], [3.0, -4.0]]))
    assert report.errors["input0"] > 0.1


def test_gradcheck_catches_missing_parameter_gradient():
    class ForgetsBias(Linear):
        def backward(self, dy):
            self.bias.trainable = False
            try:
                return super().backward(dy)
            finally:
                self.bias.trainable = True

    report = gradcheck(ForgetsBias(3, 2, rng=0, dtype=np.float64), np.ones((2, 3)))
    assert report.errors["bias"] == 1.0


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="parameter 'weight' of Linear is float32"):
        gradcheck(Linear(3, 2, rng=0), np.ones((2, 3)))
    with pytest.raises(TypeError, match="input0 is float32"):
        gradcheck(ReLU(), np.ones((2, 3), np.float32))


def test_gradcheck_demands_reset_for_randomness():
    layer = Dropout(0.5, rng=0)
    x = np.ones((4, 8))
    with pytest.raises(RuntimeError, match="reset="):
        gradcheck(layer, x)
    report = gradcheck(layer, x, reset=lambda: setattr(layer, "rng", np.random.default_rng(0)))
    report.assert_ok()


def test_gradcheck_leaves_module_state_and_grads_alone():
    bn = BatchNorm1d(3, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((5, 3))
    bn(x)
    bn.backward(np.ones((5, 3)))
    grad_before = bn.weight.grad.copy()
    state_before = bn.state_dict()
    weight_array = bn.weight.data
    gradcheck(bn, x).assert_ok()
    for name, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, state_before[name], err_msg=name)
    np.testing.assert_array_equal(bn.weight.grad, grad_before)
    assert bn.weight.data is weight_array


def test_gradcheck_integer_inputs_pass_through():
    class Scaled(Module):
        def __init__(self):
            super().__init__()
            self.w = Parameter(np.array([2.0]))

        def forward(self, x, power):
            self._x, self._power = x, power
            return self.w.data * x ** power

        def backward(self, dy):
            self.w.accumulate_grad(np.atleast_1d(np.sum(dy * self._x ** self._power)))
            return dy * self.w.data * self._power * self._x ** (self._power - 1), None

    report = gradcheck(Scaled(), np.array([1.5, -0.5]), 3)
    assert set(report.errors) == {"input0", "w"}
    report.assert_ok()
