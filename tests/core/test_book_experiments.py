"""The book's optimizer and BatchNorm experiments (chapter 6), as small, fast learning tests.

1. Minimise f(x, y) = x**2/20 + y**2 from (-7, 2) with each optimizer.
2. Train an MLP on 2-D spirals to > 95% training accuracy; check its
   backprop against finite differences in float64.
3. A 5-layer ReLU net with a poor weight scale stalls without BatchNorm and
   learns with BatchNorm1d after every hidden Linear.
"""
import numpy as np
import pytest

from core.layers import BatchNorm1d, Linear, ReLU
from core.losses import CrossEntropyLoss
from core.module import Module, Parameter, Sequential
from core.optim import SGD, AdaGrad, Adam
from core.schedules import CosineAnnealingLR, LinearWarmup
from tests.harness import assert_module_gradients

# ----------------------------------------------------------------------------- 1
START = (-7.0, 2.0)
TOL = 1e-2
BUDGET = 300
BOOK_OPTIMIZERS = {  # the book's learning rates (Figure 6-8)
    "SGD": lambda p: SGD([p], lr=0.95),
    "Momentum": lambda p: SGD([p], lr=0.1, momentum=0.9),
    "Nesterov": lambda p: SGD([p], lr=0.1, momentum=0.9, nesterov=True),
    "AdaGrad": lambda p: AdaGrad([p], lr=1.5),
    "Adam": lambda p: Adam([p], lr=0.3),
}


def grad_f(xy):
    """Gradient of f(x, y) = x**2/20 + y**2."""
    return np.array([xy[0] / 10.0, 2.0 * xy[1]])


def steps_to_minimum(make_optimizer, budget=BUDGET):
    """Steps until (x, y) stays within ``TOL`` of (0, 0), and the final point."""
    p = Parameter(np.array(START))
    opt = make_optimizer(p)
    reached = None
    for step in range(1, budget + 1):
        p.grad = grad_f(p.data)
        opt.step()
        close = np.linalg.norm(p.data) < TOL
        if close and reached is None:
            reached = step
        elif not close:
            reached = None  # passing through the tolerance on an oscillation does not count
    return reached, p.data


@pytest.mark.parametrize("name", list(BOOK_OPTIMIZERS))
def test_book_function_minimum_reached(name, record_property):
    reached, final = steps_to_minimum(BOOK_OPTIMIZERS[name])
    print(f"{name}: within {TOL} of (0, 0) after {reached} steps (final {final})")
    record_property("steps_to_tolerance", reached)
    assert reached is not None, f"{name} did not settle within {TOL} of (0, 0) in {BUDGET} steps: {final}"
    assert np.linalg.norm(final) < TOL


def test_adaptive_steps_beat_plain_sgd_at_a_shared_rate():
    # f is 20x steeper in y than in x; at lr=0.1 plain SGD crawls along x,
    # while AdaGrad/Adam rescale each coordinate (the book's point in 6.1).
    sgd, _ = steps_to_minimum(lambda p: SGD([p], lr=0.1), budget=2000)
    adagrad, _ = steps_to_minimum(lambda p: AdaGrad([p], lr=1.5), budget=2000)
    momentum, _ = steps_to_minimum(lambda p: SGD([p], lr=0.1, momentum=0.9), budget=2000)
    assert sgd is not None and adagrad < sgd / 3 and momentum < sgd / 2


# ----------------------------------------------------------------------------- 2
def spirals(points_per_class=100, classes=3, noise=0.2, seed=0):
    """``classes`` interleaved spiral arms in 2-D: x ``(N, 2)`` float32, labels ``(N,)``."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, points_per_class), classes)
    labels = np.repeat(np.arange(classes), points_per_class)
    angle = labels * (2 * np.pi / classes) + 4.0 * radius + noise * rng.standard_normal(labels.size)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1).astype(np.float32)
    return x, labels


def mlp(sizes, rng, batchnorm=False, init="he_normal"):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        # BatchNorm subtracts the batch mean, so a bias before it is dead weight (its gradient is 0).
        layers.append(Linear(a, b, bias=not (hidden and batchnorm), init=init, rng=rng))
        if hidden:
            if batchnorm:
                layers.append(BatchNorm1d(b))
            layers.append(ReLU())
    return Sequential(*layers)


def train(model, opt, x, y, epochs, batch_size=50, seed=1, schedule=None):
    """Mini-batch training; returns the per-epoch mean training loss."""
    loss_fn = CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            total += loss_fn(model(x[batch]), y[batch]) * len(batch)
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
        history.append(total / len(x))
        if schedule is not None:
            schedule.step()
    return history


def accuracy(model, x, y):
    model.eval()
    return float((model(x).argmax(axis=1) == y).mean())


@pytest.mark.parametrize("optimizer", ["adam", "momentum+warmup-cosine"])
def test_mlp_learns_spirals(optimizer):
    x, y = spirals()
    model = mlp([2, 64, 64, 3], np.random.default_rng(0))
    schedule = None
    if optimizer == "adam":
        opt = Adam(model.parameters(), lr=0.01)
    else:
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        schedule = LinearWarmup(opt, 10, after=CosineAnnealingLR(opt, T_max=290, eta_min=1e-3))
    history = train(model, opt, x, y, epochs=300, schedule=schedule)
    acc = accuracy(model, x, y)
    print(f"{optimizer}: training accuracy {acc:.3f}, loss {history[0]:.3f} -> {history[-1]:.3f}")
    assert acc > 0.95
    assert history[-1] < 0.2 * history[0]


class WithLoss(Module):
    """``x -> CrossEntropy(model(x), y)`` as one module, so gradcheck covers the whole backprop."""

    def __init__(self, model, labels):
        super().__init__()
        self.model, self.labels, self.loss = model, labels, CrossEntropyLoss()

    def forward(self, x):
        return np.asarray(self.loss(self.model(x), self.labels))

    def backward(self, dy):
        return self.model.backward(self.loss.backward(dy))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_backprop_matches_numerical_gradient(batchnorm):
    x, y = spirals(points_per_class=4, seed=3)
    model = mlp([2, 16, 16, 3], np.random.default_rng(2), batchnorm=batchnorm)
    train(model, Adam(model.parameters(), lr=0.01), x, y, epochs=5, batch_size=12)  # move off the init point
    model.train()
    report = assert_module_gradients(WithLoss(model, y), x, tol=1e-6)
    expected = {"input0", "model.0.weight", f"model.{len(model) - 1}.weight", f"model.{len(model) - 1}.bias"}
    expected |= {"model.1.weight", "model.1.bias"} if batchnorm else {"model.0.bias"}
    assert set(report.errors) >= expected


# ----------------------------------------------------------------------------- 3
@pytest.mark.parametrize("weight_std", [0.01, 1.0])
def test_batchnorm_rescues_a_badly_initialised_deep_net(weight_std):
    x, y = spirals()
    results = {}
    for batchnorm in (False, True):
        model = mlp([2, 64, 64, 64, 64, 3], np.random.default_rng(0), batchnorm=batchnorm, init=weight_std)
        history = train(model, SGD(model.parameters(), lr=0.1), x, y, epochs=60)
        results[batchnorm] = (history, accuracy(model, x, y))
        print(f"std {weight_std}, batchnorm={batchnorm}: loss {history[0]:.3f} -> {history[-1]:.3f}, "
              f"accuracy {results[batchnorm][1]:.3f}")
    (plain_loss, plain_acc), (bn_loss, bn_acc) = results[False], results[True]
    chance = np.log(3.0)
    assert plain_loss[-1] > 0.9 * chance and plain_acc < 0.5   # stalled near chance
    assert bn_loss[-1] < 0.3 * chance and bn_acc > 0.9          # learned
