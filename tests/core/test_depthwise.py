"""Direct depthwise convolution: equal to the grouped im2col convolution, gradient-checked, and torch parity."""
from __future__ import annotations

import numpy as np
import pytest

from core.functional import conv as F
from core.functional.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward, depthwise_conv2d_nhwc
from core.module import Module, Parameter
from tests.harness import assert_module_gradients

# (N, C, H, W, kernel, stride, padding, dilation): odd sizes, asymmetric TF-style padding, dilation.
CONFIGS = [
    (2, 3, 7, 9, 3, 1, 1, 1),
    (3, 5, 8, 8, 5, 2, (1, 2, 1, 2), 1),
    (1, 4, 6, 5, 3, 2, 0, 2),
    (2, 2, 9, 9, 2, 3, (0, 1, 2, 0), 1),
    (1, 6, 5, 5, (3, 1), 1, "same", 1),
    (2, 3, 9, 8, 3, 1, (2, 1, 0, 2), 2),  # stride 1 with dilation and asymmetric padding
    (1, 2, 5, 4, 3, 1, (3, 0, 0, 3), 1),  # padding wider than the kernel span on one side
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_matches_grouped_conv2d_forward_and_backward(cfg):
    N, C, H, W, k, s, p, d = cfg
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C, 1, kh, kw))
    b = rng.standard_normal(C)
    y, cache = depthwise_conv2d_forward(x, w, b, s, p, d)
    y_ref, cache_ref = F.conv2d_forward(x, w, b, s, p, d, groups=C)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(depthwise_conv2d_backward(dy, cache), F.conv2d_backward(dy, cache_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_block_splitting_does_not_change_results(monkeypatch):
    import core.functional.depthwise as D

    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 7, 12, 11)).astype(np.float32)
    w = rng.standard_normal((7, 1, 3, 3)).astype(np.float32)
    y_big, c = depthwise_conv2d_forward(x, w, None, 2, 1)
    g_big = depthwise_conv2d_backward(np.ones_like(y_big), c)
    monkeypatch.setattr(D, "BLOCK_BYTES", 600)  # one output row per block
    y_small, c = depthwise_conv2d_forward(x, w, None, 2, 1)
    g_small = depthwise_conv2d_backward(np.ones_like(y_small), c)
    np.testing.assert_array_equal(y_big, y_small)
    for a, b in zip(g_big[:2], g_small[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


class _Depthwise(Module):
    def __init__(self, channels, k, stride, padding, dilation, rng):
        super().__init__()
        self.weight = Parameter(rng.standard_normal((channels, 1, k, k)))
        self.bias = Parameter(rng.standard_normal(channels))
        self.args = (stride, padding, dilation)
        self._cache = None

    def forward(self, x):
        y, self._cache = depthwise_conv2d_forward(x, self.weight.data, self.bias.data, *self.args)
        return y

    def backward(self, dy):
        dx, dw, db = depthwise_conv2d_backward(dy, self._cache)
        self.weight.accumulate_grad(dw)
        self.bias.accumulate_grad(db)
        return dx


@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, (0, 1, 0, 1), 1), (1, 2, 2)])
def test_gradients(stride, padding, dilation):
    rng = np.random.default_rng(2)
    module = _Depthwise(3, 3, stride, padding, dilation, rng)
    assert_module_gradients(module, rng.standard_normal((2, 3, 6, 7)))


def test_skipped_gradients_are_none_and_bad_shapes_rejected():
    x = np.zeros((1, 2, 4, 4))
    y, cache = depthwise_conv2d_forward(x, np.ones((2, 1, 3, 3)), None, 1, 1)
    assert depthwise_conv2d_backward(y, cache, input_grad=False, weight_grad=False) == (None, None, None)
    with pytest.raises(ValueError, match=r"weight must be \(C, 1, kh, kw\) = \(2, 1, kh, kw\)"):
        depthwise_conv2d_forward(x, np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"kernel span \(5, 5\) is larger than the padded input \(4, 4\)"):
        depthwise_conv2d_forward(x, np.ones((2, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"dy has shape \(1, 2, 3, 3\), expected \(1, 2, 4, 4\)"):
        depthwise_conv2d_backward(np.zeros((1, 2, 3, 3)), cache)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if isinstance(c[4], int)])
def test_channels_last_inference_kernel(cfg):
    N, C, H, W, k, s, p, d = cfg
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    y, _ = depthwise_conv2d_forward(x, w, b, s, p, d)
    got = depthwise_conv2d_nhwc(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, s, p, d, clip=(-0.5, 0.5))
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), np.clip(y, -0.5, 0.5), rtol=1e-5, atol=1e-5)


def test_torch_parity():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 11, 10)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    y, cache = depthwise_conv2d_forward(x, w, None, 2, 2)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, _ = depthwise_conv2d_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=2, padding=2, groups=6)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-4, atol=1e-4)
