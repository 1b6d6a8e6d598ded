"""Parity with torch.nn (optional): forward, input gradient and parameter gradients of every layer and loss.

Weights go from the torch module into ours through ``load_state_dict``, which
also checks that names and layouts agree. Tolerances: 1e-5 in float32, 1e-10
in float64.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.layers import (GELU, BatchNorm1d, BatchNorm2d, Dropout, Dropout2d, Flatten, Identity,  # noqa: E402
                         LeakyReLU, Linear, ReLU, ReLU6, Sigmoid, Softmax, Tanh)
from core.losses import BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, MSELoss, SmoothL1Loss  # noqa: E402

DTYPES = {np.float32: (torch.float32, 1e-5), np.float64: (torch.float64, 1e-10)}
nn = torch.nn


def close(ours, theirs, tol, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=what)


def compare_module(ours, theirs, shape, dtype, seed=0, steps=1):
    """Run both ``steps`` times on fresh seeded inputs; compare outputs and every gradient."""
    torch_dtype, tol = DTYPES[dtype]
    theirs = theirs.to(torch_dtype)
    ours.astype(dtype)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(seed)
    for step in range(steps):
        x = (1.5 * rng.standard_normal(shape) + 0.3).astype(dtype)
        y = ours(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        ours.zero_grad()
        dx = ours.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        theirs.zero_grad()
        yt = theirs(xt)
        yt.backward(torch.tensor(dy))
        close(y, yt, tol, f"{type(ours).__name__} forward, step {step}")
        assert y.dtype == dtype
        close(dx, xt.grad, tol, f"{type(ours).__name__} input gradient, step {step}")
        ours_params = dict(ours.named_parameters())
        for name, p in theirs.named_parameters():
            close(ours_params[name].grad, p.grad, tol, f"{type(ours).__name__}.{name} gradient")
    for name, value in theirs.state_dict().items():  # buffers too: BatchNorm running statistics
        close(ours.state_dict()[name], value, tol, f"{type(ours).__name__} state {name}")


LAYERS = [
    ("linear", lambda: (Linear(6, 4), nn.Linear(6, 4)), (5, 6)),
    ("linear-3d", lambda: (Linear(6, 4), nn.Linear(6, 4)), (2, 3, 6)),
    ("linear-nobias", lambda: (Linear(6, 4, bias=False), nn.Linear(6, 4, bias=False)), (5, 6)),
    ("relu", lambda: (ReLU(), nn.ReLU()), (4, 7)),
    ("leaky_relu", lambda: (LeakyReLU(0.2), nn.LeakyReLU(0.2)), (4, 7)),
    ("relu6", lambda: (ReLU6(), nn.ReLU6()), (4, 7)),
    ("sigmoid", lambda: (Sigmoid(), nn.Sigmoid()), (4, 7)),
    ("tanh", lambda: (Tanh(), nn.Tanh()), (4, 7)),
    ("gelu", lambda: (GELU(), nn.GELU()), (4, 7)),
    ("gelu-tanh", lambda: (GELU(approximate="tanh"), nn.GELU(approximate="tanh")), (4, 7)),
    ("softmax", lambda: (Softmax(axis=1), nn.Softmax(dim=1)), (3, 5, 2)),
    ("identity", lambda: (Identity(), nn.Identity()), (3, 4)),
    ("flatten", lambda: (Flatten(), nn.Flatten()), (2, 3, 4, 5)),
    ("bn1d", lambda: (BatchNorm1d(5), nn.BatchNorm1d(5)), (8, 5)),
    ("bn1d-3d", lambda: (BatchNorm1d(5), nn.BatchNorm1d(5)), (4, 5, 3)),
    ("bn1d-cumulative", lambda: (BatchNorm1d(5, momentum=None), nn.BatchNorm1d(5, momentum=None)), (8, 5)),
    ("bn2d", lambda: (BatchNorm2d(3), nn.BatchNorm2d(3)), (4, 3, 5, 5)),
    ("bn2d-noaffine", lambda: (BatchNorm2d(3, affine=False), nn.BatchNorm2d(3, affine=False)), (4, 3, 2, 2)),
    ("bn2d-notrack", lambda: (BatchNorm2d(3, track_running_stats=False),
                              nn.BatchNorm2d(3, track_running_stats=False)), (4, 3, 2, 2)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name, make, shape", LAYERS, ids=[row[0] for row in LAYERS])
def test_layer_matches_torch_in_training(name, make, shape, dtype):
    torch.manual_seed(0)
    ours, theirs = make()
    if name.startswith("bn") and "noaffine" not in name:
        with torch.no_grad():  # non-trivial affine parameters
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-0.5, 0.5)
    compare_module(ours, theirs, shape, dtype, steps=3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name, make, shape", [row for row in LAYERS if row[0].startswith("bn")] + [
    ("dropout", lambda: (Dropout(0.5, rng=0), nn.Dropout(0.5)), (4, 6)),
    ("dropout2d", lambda: (Dropout2d(0.5, rng=0), nn.Dropout2d(0.5)), (2, 3, 4, 4)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_layer_matches_torch_in_eval(name, make, shape, dtype):
    torch.manual_seed(0)
    ours, theirs = make()
    if name.startswith("bn"):
        theirs.train()
        with torch.no_grad():  # give the running statistics non-trivial values first
            for _ in range(3):
                theirs(torch.randn(shape) * 2 + 1)
    ours.eval()
    theirs.eval()
    compare_module(ours, theirs, shape, dtype)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dropout_extremes_match_torch(p):
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(Dropout(p, rng=0)(x), nn.Dropout(p)(torch.tensor(x)).numpy())


def compare_loss(ours, theirs, pred, target, dtype, seed=0):
    torch_dtype, tol = DTYPES[dtype]
    pred = pred.astype(dtype)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    value = ours(pred, target)
    pt = torch.tensor(pred, requires_grad=True)
    vt = theirs(pt, torch.tensor(target))
    close(value, vt, tol, f"{type(ours).__name__} value")
    if ours.reduction == "none":
        dout = np.random.default_rng(seed).random(np.shape(value)).astype(dtype)
        grad = ours.backward(dout)
        (vt * torch.tensor(dout)).sum().backward()
    else:
        grad = ours.backward()
        vt.backward()
    assert grad.dtype == dtype
    close(grad, pt.grad, tol, f"{type(ours).__name__} gradient")


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("target_kind", ["labels", "ignore", "probs", "segmentation"])
def test_cross_entropy_matches_torch(target_kind, smoothing, reduction, dtype):
    rng = np.random.default_rng(1)
    k = 5
    shape = (6, k, 3, 2) if target_kind == "segmentation" else (6, k)
    logits = 3 * rng.standard_normal(shape)
    label_shape = shape[:1] + shape[2:]
    target = rng.integers(0, k, size=label_shape)
    ignore = None
    if target_kind in ("ignore", "segmentation"):
        ignore = 255
        target.reshape(-1)[::4] = 255
    if target_kind == "probs":
        target = rng.dirichlet(np.ones(k), size=shape[0])
    ours = CrossEntropyLoss(label_smoothing=smoothing, ignore_index=ignore, reduction=reduction)
    theirs = nn.CrossEntropyLoss(label_smoothing=smoothing, ignore_index=-100 if ignore is None else ignore,
                                 reduction=reduction)
    compare_loss(ours, theirs, logits, target, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ours_cls, theirs_cls, kwargs", [
    (MSELoss, nn.MSELoss, {}),
    (HuberLoss, nn.HuberLoss, {"delta": 0.8}),
    (SmoothL1Loss, nn.SmoothL1Loss, {"beta": 0.5}),
    (SmoothL1Loss, nn.SmoothL1Loss, {"beta": 0.0}),
    (BCEWithLogitsLoss, nn.BCEWithLogitsLoss, {}),
], ids=["mse", "huber", "smoothl1", "l1", "bce"])
def test_elementwise_losses_match_torch(ours_cls, theirs_cls, kwargs, reduction, dtype):
    rng = np.random.default_rng(2)
    pred = 2 * rng.standard_normal((7, 3))
    target = rng.random((7, 3)) if ours_cls is BCEWithLogitsLoss else rng.standard_normal((7, 3))
    compare_loss(ours_cls(reduction=reduction, **kwargs), theirs_cls(reduction=reduction, **kwargs),
                 pred, target, dtype)


def test_half_mse_is_half_of_torch_mse():
    rng = np.random.default_rng(3)
    pred, target = rng.standard_normal(10), rng.standard_normal(10)
    assert MSELoss(half=True)(pred, target) == pytest.approx(
        0.5 * nn.MSELoss()(torch.tensor(pred), torch.tensor(target)).item(), rel=1e-12)
