"""Parity with torch.nn (optional) for the convolutional layers and kernels.

Seeded random configurations of every layer are run forward and backward in
both frameworks; weights travel from the torch module into ours through
``load_state_dict`` (so names and layouts are checked too). Tolerances: 1e-5
relative to the largest reference entry in float32, 1e-10 in float64.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.functional import conv as C  # noqa: E402
from core.layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Concat, Conv2d, ConvTranspose2d,  # noqa: E402
                         Dropout2d, GlobalAvgPool2d, LocalResponseNorm, MaxPool2d, Upsample, ZeroPad2d)

nn = torch.nn
F = torch.nn.functional
DTYPES = {np.float32: (torch.float32, 1e-5), np.float64: (torch.float64, 1e-10)}


def close(ours, theirs, tol, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    err = float(np.abs(ours.astype(np.float64) - theirs).max(initial=0.0)) / scale
    assert err <= tol, f"{what}: max error {err:.3g} (relative to {scale:.3g}) > {tol:g}"


def compare(ours, theirs, x, dtype, what):
    """Forward, input gradient, parameter gradients and state of ``ours`` vs ``theirs`` on ``x``."""
    torch_dtype, tol = DTYPES[dtype]
    theirs = theirs.to(torch_dtype)
    ours.astype(dtype)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = x.astype(dtype)
    y = ours(x)
    assert y.dtype == dtype, f"{what}: output dtype {y.dtype}"
    dy = np.random.default_rng(99).standard_normal(y.shape).astype(dtype)
    ours.zero_grad()
    dx = ours.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    close(y, yt, tol, f"{what} forward")
    close(dx, xt.grad, tol, f"{what} input gradient")
    assert dx.dtype == dtype
    ours_params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        close(ours_params[name].grad, p.grad, tol, f"{what} {name} gradient")
    for name, value in theirs.state_dict().items():
        close(ours.state_dict()[name], value, tol, f"{what} state {name}")


def random_conv_config(rng):
    groups = int(rng.choice([1, 1, 2, 3]))
    cfg = dict(
        in_channels=groups * int(rng.integers(1, 4)), out_channels=groups * int(rng.integers(1, 4)),
        kernel_size=(int(rng.integers(1, 5)), int(rng.integers(1, 5))),
        stride=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
        padding=(int(rng.integers(0, 3)), int(rng.integers(0, 3))),
        dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
        groups=groups, bias=bool(rng.integers(0, 2)),
    )
    span = [d * (k - 1) + 1 for d, k in zip(cfg["dilation"], cfg["kernel_size"])]
    shape = (int(rng.integers(1, 4)), cfg["in_channels"],
             int(rng.integers(max(1, span[0] - 2 * cfg["padding"][0]), 14)),
             int(rng.integers(max(1, span[1] - 2 * cfg["padding"][1]), 14)))
    return cfg, shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
def test_conv2d_random_configs(seed, dtype):
    rng = np.random.default_rng(seed)
    cfg, shape = random_conv_config(rng)
    x = rng.standard_normal(shape)
    compare(Conv2d(**cfg), nn.Conv2d(**cfg), x, dtype, f"Conv2d{cfg} on {shape}")


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (4, 1), ((2, 5), (2, 1))])
def test_conv2d_string_padding(padding, kernel_size, dilation):
    cfg = dict(in_channels=3, out_channels=4, kernel_size=kernel_size, padding=padding, dilation=dilation)
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 12))
    compare(Conv2d(**cfg), nn.Conv2d(**cfg), x, np.float64, f"Conv2d{cfg}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_depthwise(dtype):
    cfg = dict(in_channels=6, out_channels=12, kernel_size=3, stride=2, padding=1, groups=6)
    x = np.random.default_rng(1).standard_normal((3, 6, 9, 10))
    compare(Conv2d(**cfg), nn.Conv2d(**cfg), x, dtype, "depthwise Conv2d")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride,padding,dilation,kernel_size,bias", [
    (1, 1, 1, 3, True), (2, 1, 1, 3, False), (1, 2, 1, 5, True), (2, 2, 1, 5, True), (1, 2, 2, 3, False),
    (2, (1, 0), 1, (3, 2), True), (1, "same", 1, 3, True),
])
def test_conv2d_true_depthwise(dtype, stride, padding, dilation, kernel_size, bias):
    """groups == in == out channels takes the direct depthwise kernel inside Conv2d."""
    cfg = dict(in_channels=5, out_channels=5, kernel_size=kernel_size, stride=stride, padding=padding,
               dilation=dilation, groups=5, bias=bias)
    x = np.random.default_rng(2).standard_normal((3, 5, 11, 10))
    compare(Conv2d(**cfg), nn.Conv2d(**cfg), x, dtype, f"depthwise Conv2d{cfg}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
def test_conv_transpose2d_random_configs(seed, dtype):
    rng = np.random.default_rng(100 + seed)
    cfg, shape = random_conv_config(rng)
    cfg["output_padding"] = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(cfg["stride"], cfg["dilation"]))
    out = [C.conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in zip(
        shape[2:], cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["dilation"])]
    if min(out) < 1:  # padding eats the whole output: grow the input
        shape = shape[:2] + (shape[2] + 4, shape[3] + 4)
    x = rng.standard_normal(shape)
    compare(ConvTranspose2d(**cfg), nn.ConvTranspose2d(**cfg), x, dtype, f"ConvTranspose2d{cfg} on {shape}")


@pytest.mark.parametrize("seed", range(6))
def test_conv_layers_across_sample_blocks(monkeypatch, seed):
    """Tiny blocks (one or two samples): blocked products and dW accumulation must match torch."""
    monkeypatch.setattr(C, "BLOCK_BYTES", 3000)
    rng = np.random.default_rng(200 + seed)
    cfg, shape = random_conv_config(rng)
    shape = (5,) + shape[1:]
    compare(Conv2d(**cfg), nn.Conv2d(**cfg), rng.standard_normal(shape), np.float64, f"blocked Conv2d{cfg}")
    cfg["padding"] = (0, 0)
    compare(ConvTranspose2d(**cfg), nn.ConvTranspose2d(**cfg), rng.standard_normal(shape), np.float64,
            f"blocked ConvTranspose2d{cfg}")


POOLS = [
    ("max 2", lambda: (MaxPool2d(2), nn.MaxPool2d(2)), (2, 3, 8, 8)),
    ("max 2 odd", lambda: (MaxPool2d(2), nn.MaxPool2d(2)), (2, 3, 9, 7)),
    ("max 3 s2 p1", lambda: (MaxPool2d(3, 2, 1), nn.MaxPool2d(3, 2, 1)), (2, 3, 9, 10)),
    ("max 3 s2 ceil", lambda: (MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(3, 2, ceil_mode=True)), (2, 2, 8, 11)),
    ("max 2 s1 p1 ceil", lambda: (MaxPool2d(2, 1, 1, ceil_mode=True), nn.MaxPool2d(2, 1, 1, ceil_mode=True)),
     (1, 2, 5, 6)),
    ("max 2 s2 p1 ceil drop", lambda: (MaxPool2d(2, 2, 1, ceil_mode=True), nn.MaxPool2d(2, 2, 1, ceil_mode=True)),
     (1, 2, 5, 5)),
    ("max (2,3) dil 2", lambda: (MaxPool2d((2, 3), (1, 2), dilation=2), nn.MaxPool2d((2, 3), (1, 2), dilation=2)),
     (2, 2, 9, 11)),
    ("avg 2", lambda: (AvgPool2d(2), nn.AvgPool2d(2)), (2, 3, 8, 9)),
    ("avg 3 s2 p1", lambda: (AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1)), (2, 3, 9, 10)),
    ("avg 3 s2 p1 excl", lambda: (AvgPool2d(3, 2, 1, count_include_pad=False),
                                  nn.AvgPool2d(3, 2, 1, count_include_pad=False)), (2, 3, 9, 10)),
    ("avg 3 s2 p1 ceil", lambda: (AvgPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, ceil_mode=True)),
     (2, 3, 10, 8)),
    ("avg ceil excl", lambda: (AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                               nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)), (2, 3, 10, 8)),
    ("adaptive 3x2", lambda: (AdaptiveAvgPool2d((3, 2)), nn.AdaptiveAvgPool2d((3, 2))), (2, 3, 7, 9)),
    ("adaptive 5 (up)", lambda: (AdaptiveAvgPool2d(5), nn.AdaptiveAvgPool2d(5)), (2, 3, 3, 4)),
    ("adaptive uniform", lambda: (AdaptiveAvgPool2d((2, 3)), nn.AdaptiveAvgPool2d((2, 3))), (2, 3, 8, 9)),
    ("adaptive None", lambda: (AdaptiveAvgPool2d((None, 2)), nn.AdaptiveAvgPool2d((None, 2))), (2, 3, 5, 7)),
    ("global", lambda: (GlobalAvgPool2d(), nn.AdaptiveAvgPool2d(1)), (2, 4, 5, 6)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,make,shape", POOLS, ids=[p[0] for p in POOLS])
def test_pooling(name, make, shape, dtype):
    ours, theirs = make()
    x = np.random.default_rng(3).standard_normal(shape)
    compare(ours, theirs, x, dtype, name)


def test_max_pool_ties_route_to_first_maximum():
    # A ReLU output is full of tied zeros: the gradient must go to one element per window.
    x = np.maximum(np.random.default_rng(4).standard_normal((2, 3, 6, 6)), 0)
    x[0, 0, :2, :2] = 0.0
    compare(MaxPool2d(2), nn.MaxPool2d(2), x, np.float64, "maxpool ties")
    compare(MaxPool2d(3, 1, 1), nn.MaxPool2d(3, 1, 1), x, np.float64, "overlapping maxpool ties")


RESIZES = [
    ("nearest x2", dict(scale_factor=2, mode="nearest"), (2, 3, 4, 5)),
    ("nearest size", dict(size=(7, 3), mode="nearest"), (2, 3, 4, 5)),
    ("nearest down", dict(size=(3, 2), mode="nearest"), (1, 2, 7, 5)),
    ("nearest 1.5", dict(scale_factor=1.5, mode="nearest"), (1, 2, 5, 6)),
    ("bilinear x2", dict(scale_factor=2, mode="bilinear"), (2, 3, 4, 5)),
    ("bilinear x2 corners", dict(scale_factor=2, mode="bilinear", align_corners=True), (2, 3, 4, 5)),
    ("bilinear size", dict(size=(9, 4), mode="bilinear"), (2, 3, 4, 5)),
    ("bilinear size corners", dict(size=(9, 4), mode="bilinear", align_corners=True), (2, 3, 4, 5)),
    ("bilinear down", dict(size=(3, 2), mode="bilinear"), (1, 2, 8, 7)),
    ("bilinear (1.7, 2.5)", dict(scale_factor=(1.7, 2.5), mode="bilinear"), (1, 2, 5, 3)),
    ("bilinear to 1", dict(size=(1, 1), mode="bilinear", align_corners=True), (1, 2, 5, 3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs,shape", RESIZES, ids=[r[0] for r in RESIZES])
def test_upsample(name, kwargs, shape, dtype):
    x = np.random.default_rng(5).standard_normal(shape)
    compare(Upsample(**kwargs), nn.Upsample(**kwargs), x, dtype, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", [2, (1, 0, 3, 2)])
def test_zero_pad(padding, dtype):
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5))
    compare(ZeroPad2d(padding), nn.ZeroPad2d(padding), x, dtype, f"ZeroPad2d({padding})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_local_response_norm(size, dtype):
    kwargs = dict(size=size, alpha=0.3, beta=0.75, k=2.0)  # a large alpha makes the channel coupling visible
    x = np.random.default_rng(7).standard_normal((2, 7, 3, 4))
    compare(LocalResponseNorm(**kwargs), nn.LocalResponseNorm(**kwargs), x, dtype, f"LRN{kwargs}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm2d_and_dropout2d_in_eval_after_conv(dtype):
    """The layers helper's BatchNorm2d and Dropout2d on a channel-major conv output."""
    rng = np.random.default_rng(8)
    conv_t = nn.Conv2d(3, 5, 3, padding=1).to(DTYPES[dtype][0])
    conv = Conv2d(3, 5, 3, padding=1).astype(dtype)
    conv.load_state_dict({k: v.numpy() for k, v in conv_t.state_dict().items()})
    x = rng.standard_normal((4, 3, 6, 7)).astype(dtype)
    h = conv(x)
    assert not h.flags.c_contiguous or h.shape[0] == 1  # the conv output really is channel-major here
    compare(BatchNorm2d(5), nn.BatchNorm2d(5), h, dtype, "BatchNorm2d train on conv output")
    drop, drop_t = Dropout2d(0.5), nn.Dropout2d(0.5)
    drop.eval(), drop_t.eval()
    compare(drop, drop_t, h, dtype, "Dropout2d eval on conv output")


def test_concat_matches_torch_cat():
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 2, 4, 5))
    cat = Concat()
    y = cat([a, b])
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    yt = torch.cat([at, bt], dim=1)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    da, db = cat.backward(dy)
    close(y, yt, 1e-12, "concat forward")
    close(da, at.grad, 1e-12, "concat grad a")
    close(db, bt.grad, 1e-12, "concat grad b")


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=(2, 3), stride=2, padding=1),
                                    dict(kernel_size=2, dilation=(2, 1), padding=(1, 0), stride=(1, 3))])
def test_unfold_fold_match_torch(kwargs):
    x = np.random.default_rng(10).standard_normal((2, 3, 7, 8))
    cols = C.unfold(x, **kwargs)
    cols_t = F.unfold(torch.tensor(x), **kwargs)
    close(cols, cols_t, 1e-12, "unfold")
    close(C.fold(cols, (7, 8), **kwargs), F.fold(cols_t, (7, 8), **kwargs), 1e-12, "fold")
