"""The Module contract of core/module.py: names, state, modes, freezing, composition, dtype."""
from collections import OrderedDict

import numpy as np
import pytest

from core.layers import BatchNorm1d, Dropout, Linear, ReLU, Tanh
from core.module import IncompatibleKeys, Module, Parameter, Residual, Sequential
from tests.harness import assert_module_gradients


class Net(Module):
    """A small tree: own parameter, a Sequential body with BN, a head."""

    def __init__(self, seed=0, dtype=np.float32):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.scale = Parameter(np.ones(1, dtype=dtype))
        self.features = Sequential(Linear(4, 6, rng=rng, dtype=dtype), BatchNorm1d(6, dtype=dtype), ReLU(),
                                   Linear(6, 5, rng=rng, dtype=dtype))
        self.head = Linear(5, 3, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.head(self.features(x)) * self.scale.data

    def backward(self, dy):
        y = self.head._x @ self.head.weight.data.T + self.head.bias.data
        if self.scale.trainable:
            self.scale.accumulate_grad(np.sum(dy * y, keepdims=True).reshape(1))
        return self.features.backward(self.head.backward(dy * self.scale.data))


class Spy(Module):
    """Identity that records how often backward ran, optionally with a parameter."""

    def __init__(self, trainable=True):
        super().__init__()
        self.w = Parameter(np.ones(1), trainable=trainable)
        self.calls = 0

    def forward(self, x):
        return x

    def backward(self, dy):
        self.calls += 1
        return dy


def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                     "features.3.weight", "features.3.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "features", "features.0", "features.1", "features.2",
                                                   "features.3", "head"]
    assert net.num_parameters() == 1 + (24 + 6) + (6 + 6) + (30 + 5) + (15 + 3)


def test_shared_parameter_counted_once_and_none_unregisters():
    class Tied(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(3, 3, rng=0)
            self.b = Linear(3, 3, rng=1)
            self.b.weight = self.a.weight

    tied = Tied()
    assert [n for n, _ in tied.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    tied.b.bias = None
    assert "b.bias" not in dict(tied.named_parameters())
    with pytest.raises(TypeError, match="holds a Parameter"):
        tied.a.weight = np.zeros((3, 3))


def test_missing_super_init_is_reported():
    class Broken(Module):
        def __init__(self):
            self.w = Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_state_dict_round_trip_restores_outputs():
    x = np.random.default_rng(5).standard_normal((8, 4)).astype(np.float32)
    src, dst = Net(seed=0), Net(seed=1)
    src(x)  # moves BN running statistics away from their initial values
    src.eval()
    dst.eval()
    state = src.state_dict()
    assert list(state) == [
        "scale", "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
        "features.3.weight", "features.3.bias", "head.weight", "head.bias"]
    assert int(state["features.1.num_batches_tracked"]) == 1
    assert not np.allclose(src(x), dst(x))
    result = dst.load_state_dict(state)
    assert result == IncompatibleKeys([], [])
    np.testing.assert_array_equal(src(x), dst(x))
    assert dst.features[1].num_batches_tracked.dtype == np.int64
    # state_dict returns copies: editing it leaves the model alone
    state["head.bias"][:] = 100.0
    assert not np.any(src.head.bias.data == 100.0)


def test_load_state_dict_strict_errors_name_every_key():
    net = Net()
    state = net.state_dict()
    del state["head.bias"]
    state["head.extra"] = np.zeros(2)
    state["features.0.weight"] = np.zeros((7, 4))
    with pytest.raises(ValueError) as err:
        net.load_state_dict(state)
    message = str(err.value)
    assert "missing keys (1): head.bias" in message
    assert "unexpected keys (1): head.extra" in message
    assert "features.0.weight: checkpoint (7, 4) vs model (6, 4)" in message


def test_load_state_dict_non_strict_reports_and_still_rejects_shapes():
    net = Net()
    state = net.state_dict()
    del state["scale"]
    state["bogus"] = np.ones(1)
    result = Net(seed=3).load_state_dict(state, strict=False)
    assert result.missing == ["scale"] and result.unexpected == ["bogus"]
    state["head.weight"] = np.zeros((3, 4))
    with pytest.raises(ValueError, match="head.weight"):
        Net().load_state_dict(state, strict=False)


def test_load_state_dict_casts_to_parameter_dtype():
    net = Net()
    state = {k: np.asarray(v, dtype=np.float64) if v.dtype.kind == "f" else v for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_train_eval_reach_every_descendant():
    net = Net()
    net.features.append(Dropout(0.5, rng=0))
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    x = np.ones((2, 5), dtype=np.float32)
    np.testing.assert_array_equal(net.features[4](x), x)  # dropout is the identity in eval
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.features[1].training


def test_keep_eval_modules_stay_in_eval_mode():
    net = Net()
    net.features[1].keep_eval = True
    net.train()
    assert not net.features[1].training
    assert net.training and net.features[0].training
    net.eval()
    net.train(True)
    assert not net.features[1].training
    net.features[1].keep_eval = False
    net.train()
    assert net.features[1].training


def test_freeze_by_pattern_prefix_and_module():
    net = Net()
    net.freeze("features.*")
    assert {n for n, _ in net.named_parameters(trainable_only=True)} == {"scale", "head.weight", "head.bias"}
    net.unfreeze("features.3")
    assert net.features[3].weight.trainable and net.features[3].bias.trainable
    assert not net.features[0].weight.trainable
    net.unfreeze()
    net.freeze(net.head)
    assert not net.head.weight.trainable and net.features[0].weight.trainable
    assert net.num_parameters(trainable_only=True) == net.num_parameters() - 18


def test_freeze_unknown_pattern_names_it():
    with pytest.raises(ValueError, match="'classifier.*'.*matches no parameter"):
        Net().freeze("classifier.*")
    with pytest.raises(TypeError, match="str or Module"):
        Net().freeze(3)


def test_frozen_parameters_get_no_gradient():
    net = Net()
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    net.freeze("features")
    y = net(x)
    net.backward(np.ones_like(y))
    assert all(p.grad is None for p in net.features.parameters())
    assert net.head.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_freeze_clears_existing_gradients():
    lin = Linear(3, 2, rng=0)
    lin(np.ones((1, 3), np.float32))
    lin.backward(np.ones((1, 2), np.float32))
    assert lin.weight.grad is not None
    lin.freeze()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_sequential_gradients():
    rng = np.random.default_rng(0)
    model = Sequential(Linear(4, 5, rng=rng), Tanh(), Linear(5, 3, rng=rng))
    assert_module_gradients(model, rng.standard_normal((6, 4)))


@pytest.mark.parametrize("with_shortcut", [False, True])
def test_residual_adds_gradients_of_both_paths(with_shortcut):
    rng = np.random.default_rng(1)
    body = Sequential(Linear(4, 4, rng=rng), Tanh(), Linear(4, 4, rng=rng))
    shortcut = Linear(4, 4, rng=rng) if with_shortcut else None
    block = Residual(body, shortcut, activation=Tanh())
    report = assert_module_gradients(block, rng.standard_normal((5, 4)))
    assert set(report.errors) >= {"input0", "body.0.weight", "body.2.bias"}


def test_residual_identity_shortcut_passes_gradient_through():
    block = Residual(Sequential(Linear(3, 3, rng=0, dtype=np.float64)))
    block.freeze()
    x = np.random.default_rng(0).standard_normal((2, 3))
    block(x)
    dy = np.ones((2, 3))
    np.testing.assert_allclose(block.backward(dy), dy + dy @ block.body[0].weight.data)


def test_residual_shape_mismatch_is_reported():
    block = Residual(Linear(3, 4, rng=0))
    with pytest.raises(ValueError, match=r"Residual: body output \(2, 4\) and shortcut output \(2, 3\)"):
        block(np.ones((2, 3), np.float32))


def test_sequential_stops_below_lowest_trainable_child():
    low, frozen, top = Spy(trainable=False), Spy(trainable=False), Spy(trainable=True)
    mid = Spy(trainable=True)
    model = Sequential(low, frozen, mid, top)
    model(np.ones(2))
    assert model.backward(np.ones(2)) is not None
    assert [m.calls for m in (low, frozen, mid, top)] == [1, 1, 1, 1]
    model.requires_input_grad = False
    assert model.backward(np.ones(2)) is None
    assert [m.calls for m in (low, frozen, mid, top)] == [1, 1, 2, 2]
    model.freeze()
    assert model.backward(np.ones(2)) is None  # nothing trainable: no backward work at all
    assert [m.calls for m in (low, frozen, mid, top)] == [1, 1, 2, 2]


def test_sequential_container_behaviour():
    a, b = Linear(2, 3, rng=0), ReLU()
    seq = Sequential(OrderedDict([("fc", a), ("act", b)]))
    assert [n for n, _ in seq.named_parameters()] == ["fc.weight", "fc.bias"]
    assert len(seq) == 2 and seq[0] is a and list(seq) == [a, b]
    sub = seq[1:]
    assert isinstance(sub, Sequential) and sub[0] is b
    seq.append(Linear(3, 1, rng=0))
    assert "2.weight" in seq.state_dict()
    with pytest.raises(TypeError, match="expected a Module"):
        Sequential(Linear(2, 2), "relu")
    with pytest.raises(TypeError, match="expected a Module"):
        seq.append(np.ones(2))


def test_astype_casts_parameters_and_float_buffers():
    net = Net()
    x = np.ones((4, 4), np.float32)
    net.backward(np.ones_like(net(x)))
    net.astype(np.float64)
    assert all(p.dtype == np.float64 and p.grad is None for p in net.parameters())
    bn = net.features[1]
    assert bn.running_mean.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    assert net.dtype == np.float64
    assert net(x).dtype == np.float64  # float32 input follows the float64 weights


def test_repr_shows_tree():
    text = repr(Sequential(Linear(2, 3), ReLU()))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text and "(1): ReLU()" in text
