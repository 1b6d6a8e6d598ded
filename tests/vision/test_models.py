"""Model builders: registry, shapes, gradient checks on tiny instances, summaries and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from core.layers import BatchNorm2d, Dropout
from core.module import Sequential
from tests.harness import assert_module_gradients
from vision.models import (MODELS, BasicBlock, InceptionBlock, ResNet, alexnet, build_model, deep_conv_net,
                           format_summary, inception_small, lenet5, model_names, resnet18, simple_conv_net,
                           summarize, vgg, vgg_small)
from vision.models.inception import BasicConv2d
from vision.models.resnet import PadShortcut, cifar_resnet, conv1x1
from vision.models.vgg import make_features

# Builders of the full-size ImageNet layouts need >= 32x32 inputs; keep them tiny through their options.
SMALL_KWARGS = {
    "alexnet": {"width": 0.125, "hidden": 16},
    "vgg11": {"hidden": 8}, "vgg11_bn": {"hidden": 8}, "vgg13": {"hidden": 8}, "vgg13_bn": {"hidden": 8},
    "vgg16": {"hidden": 8}, "vgg16_bn": {"hidden": 8}, "vgg19": {"hidden": 8}, "vgg19_bn": {"hidden": 8},
    "resnet34": {"widths": (4, 8, 8, 8)}, "resnet18": {"widths": (4, 8, 8, 8)},
    "resnet44": {"widths": (2, 4, 4)}, "resnet56": {"widths": (2, 4, 4)},
}
LARGE_INPUT = {n for n in MODELS if n.startswith("vgg") and n != "vgg_small"}


def _reseed_dropout(model):
    def reset():
        for m in model.modules():
            if isinstance(m, Dropout):
                m.rng = np.random.default_rng(0)
    return reset


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_maps_images_to_logits(name):
    size = (32, 32) if name in LARGE_INPUT else (28, 28)
    model = build_model(name, num_classes=7, in_channels=1, input_size=size, rng=0, **SMALL_KWARGS.get(name, {}))
    x = np.random.default_rng(1).random((2, 1) + size, dtype=np.float32)
    y = model(x)
    assert y.shape == (2, 7) and y.dtype == np.float32 and np.isfinite(y).all()
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert all(p.grad is not None for p in model.parameters()), f"{name}: a parameter got no gradient"


def test_registry_lookup_is_forgiving_and_unknown_names_list_the_valid_ones():
    assert type(build_model("Deep-Conv-Net")) is type(build_model("deepconvnet"))
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*deepconvnet.*vgg16"):
        build_model("resnet9000")
    assert model_names() == sorted(MODELS)


def test_book_simple_conv_net_is_the_books_layout():
    model = simple_conv_net(rng=0)
    assert model.fc1.weight.shape == (100, 4320)  # 30 x 12 x 12, the book's value
    assert model.conv1.weight.shape == (30, 1, 5, 5) and model.fc2.weight.shape == (10, 100)
    # The book's weight_init_std = 0.01.
    assert abs(float(model.fc1.weight.data.std()) - 0.01) < 1e-3
    rows = summarize(model, (1, 28, 28))
    assert [r.output_shape for r in rows] == [(30, 24, 24), (30, 24, 24), (30, 12, 12), (4320,), (100,), (100,),
                                              (10,)]


def test_book_deep_conv_net_is_the_books_layout():
    model = deep_conv_net(rng=0)
    convs = [getattr(model, f"conv{i}") for i in range(1, 7)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64]
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (1, 1), (2, 2), (1, 1), (1, 1)]
    assert model.fc1.weight.shape == (50, 1024)  # 64 x 4 x 4
    # He initialisation: std sqrt(2 / fan_in) with fan_in 64*3*3 for conv6.
    assert abs(float(convs[5].weight.data.std()) - np.sqrt(2 / 576)) < 0.01
    kinds = [type(m).__name__ for m in model]
    assert kinds[-5:] == ["Linear", "ReLU", "Dropout", "Linear", "Dropout"]
    assert model.num_parameters() == 123552


def test_gradients_simple_conv_net():
    model = simple_conv_net(num_classes=3, input_size=(8, 8), filters=2, hidden=4, rng=0)
    assert_module_gradients(model, np.random.default_rng(0).standard_normal((2, 1, 8, 8)))


def test_gradients_deep_conv_net_with_dropout():
    model = deep_conv_net(num_classes=3, input_size=(8, 8), hidden=4, rng=0)
    model.freeze("conv2", "conv3", "conv4", "conv5", "conv6")  # keep the finite-difference count small
    assert_module_gradients(model, np.random.default_rng(0).standard_normal((2, 1, 8, 8)),
                            reset=_reseed_dropout(model))


def test_gradients_lenet5_tanh_avg():
    model = lenet5(num_classes=3, input_size=(12, 12), activation="tanh", pool="avg", rng=0)
    model.freeze("conv2", "fc2")
    assert_module_gradients(model, np.random.default_rng(0).standard_normal((2, 1, 12, 12)))


def test_gradients_alexnet_small_with_lrn_and_dropout():
    model = alexnet(num_classes=3, in_channels=1, input_size=(15, 15), width=1 / 64, hidden=4, rng=0)
    assert any(type(m).__name__ == "LocalResponseNorm" for m in model.modules())
    assert_module_gradients(model, np.random.default_rng(0).standard_normal((2, 1, 15, 15)),
                            reset=_reseed_dropout(model))


def test_gradients_vgg_features_with_batchnorm():
    # A short configuration: in a deep stack of 1-2 channel BN layers the early gradients are ~1e-6
    # and finite differences lose their digits; the builder code under test is the same.
    features, channels, size = make_features((3, "M", 4, 4, "M", 4, "M"), 1, True, rng=0, input_size=(6, 6))
    assert (channels, size) == (4, (1, 1))
    assert sum(type(m).__name__ == "MaxPool2d" for m in features) == 2  # the pool of a 1x1 map is skipped
    # A conv bias right before BatchNorm has a zero gradient (BN subtracts the mean): nothing to check.
    features.freeze(*[f"{i}.bias" for i, m in enumerate(features) if type(m).__name__ == "Conv2d"])
    assert_module_gradients(features, np.random.default_rng(0).standard_normal((4, 1, 6, 6)), tol=1e-5)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_gradients_tiny_resnet(shortcut):
    model = ResNet((1, 1), num_classes=3, in_channels=1, widths=(2, 4), stem="cifar", shortcut=shortcut, rng=0)
    assert isinstance(model.layer2[0].downsample, PadShortcut if shortcut == "A" else Sequential)
    assert_module_gradients(model, np.random.default_rng(0).standard_normal((3, 1, 6, 6)), tol=1e-5)


def test_gradients_inception_block():
    block = InceptionBlock(3, 2, 2, 2, 1, 2, 1, rng=0)
    assert block.out_channels == 7
    assert_module_gradients(block, np.random.default_rng(0).standard_normal((3, 3, 5, 5)), tol=1e-5)


def _param_grads(model, x):
    model.zero_grad()
    y = model(x)
    dx = model.backward(np.random.default_rng(5).standard_normal(y.shape).astype(y.dtype))
    return dx, {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("first", ["basic_block_B", "basic_block_A", "inception", "basic_conv"])
def test_skipping_the_input_gradient_keeps_every_parameter_gradient(first):
    rng = np.random.default_rng(0)
    if first.startswith("basic_block"):
        down = (PadShortcut(2, 4, 2) if first.endswith("A")
                else Sequential(conv1x1(2, 4, stride=2, rng=rng), BatchNorm2d(4)))
        head = BasicBlock(2, 4, stride=2, downsample=down, rng=rng)
        x = rng.standard_normal((3, 2, 6, 6))
    elif first == "inception":
        head = InceptionBlock(2, 2, 2, 2, 1, 2, 1, rng=rng)
        x = rng.standard_normal((3, 2, 5, 5))
    else:
        head = BasicConv2d(2, 3, 3, padding=1, rng=rng)
        x = rng.standard_normal((3, 2, 5, 5))
    model = Sequential(head, BasicConv2d(_out_channels(head), 2, 1, rng=rng)).astype(np.float64)
    dx_full, full = _param_grads(model, x)
    assert dx_full.shape == x.shape
    model.requires_input_grad = False
    dx_none, skipped = _param_grads(model, x)
    assert dx_none is None
    assert full.keys() == skipped.keys()
    for name in full:
        np.testing.assert_allclose(skipped[name], full[name], rtol=1e-10, atol=1e-12, err_msg=name)


def _out_channels(head):
    if isinstance(head, BasicBlock):
        return head.conv2.out_channels
    if isinstance(head, InceptionBlock):
        return head.out_channels
    return head.conv.out_channels


def test_resnet_backward_without_input_gradient_matches():
    model = ResNet((1, 1), num_classes=3, in_channels=1, widths=(2, 4), stem="cifar", rng=0).astype(np.float64)
    x = np.random.default_rng(2).standard_normal((2, 1, 6, 6))
    dx, full = _param_grads(model, x)
    model.requires_input_grad = False
    none, skipped = _param_grads(model, x)
    assert none is None and dx.shape == x.shape
    for name in full:
        np.testing.assert_allclose(skipped[name], full[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_resnet_stems_and_cifar_depths():
    assert resnet18(input_size=(224, 224)).stem == "imagenet"
    small = resnet18(num_classes=10, in_channels=1, input_size=(28, 28), widths=(4, 8, 8, 8))
    assert small.stem == "cifar" and small.maxpool is None and small.conv1.weight.shape == (4, 1, 3, 3)
    r20 = build_model("resnet20", num_classes=10, in_channels=3, input_size=(32, 32))
    assert r20.num_parameters() == 269722  # the paper's "0.27M" for ResNet-20 (3 input channels)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_resnet(21)


def test_inception_small_concatenates_branches():
    model = inception_small(num_classes=10, input_size=(28, 28), width=0.25, rng=0)
    rows = {r.name: r for r in summarize(model, (1, 28, 28))}
    assert rows["inception3a.concat"].output_shape == (model.inception3a.out_channels, 14, 14)
    assert rows["inception4b.concat"].output_shape[1:] == (7, 7)


def test_vgg_variants_keep_torchvision_layout_and_refuse_tiny_inputs():
    m = vgg(11, batch_norm=True, num_classes=5, input_size=(32, 32), hidden=8)
    assert type(m.features[1]).__name__ == "BatchNorm2d"
    assert m.classifier[0].weight.shape == (8, 512 * 7 * 7)
    with pytest.raises(ValueError, match="smaller than 32x32.*vgg_small"):
        vgg(16, num_classes=10, in_channels=1, input_size=(28, 28))
    small = vgg_small(num_classes=10, input_size=(28, 28))
    pools = sum(type(layer).__name__ == "MaxPool2d" for layer in small.features)
    assert pools == 4  # 28 -> 14 -> 7 -> 3 -> 1; the fifth pool is skipped


def test_summary_lists_shapes_params_and_macs():
    model = build_model("lenet5", num_classes=10, input_size=(28, 28))
    rows = summarize(model, (1, 28, 28))
    assert rows[0].name == "conv1" and rows[0].output_shape == (6, 28, 28)
    assert rows[0].macs == 6 * 28 * 28 * 25
    assert sum(r.params for r in rows) == model.num_parameters() == 61706
    text = format_summary(rows, model)
    assert "total parameters: 61,706" in text and "fc3" in text
    assert model.training  # mode restored
    assert "forward" not in vars(model.conv1)  # recording wrappers removed


@pytest.mark.parametrize("call, match", [
    (lambda: build_model("deepconvnet", num_classes=0), "num_classes must be a positive int, got 0"),
    (lambda: build_model("simpleconvnet", input_size=(4, 4)), "simple_conv_net"),
    (lambda: build_model("lenet5", activation="swish"), "activation must be one of"),
    (lambda: build_model("alexnet", input_size=(8, 8)), "too small"),
    (lambda: build_model("vgg_small", depth=12), "depth must be one of"),
    (lambda: build_model("resnet18", stem="tiny"), "stem must be"),
    (lambda: build_model("deepconvnet", input_size=(28,)), "input_size must be an int or a pair"),
])
def test_bad_builder_arguments_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_input_channels_is_reported_by_the_first_layer():
    model = build_model("deepconvnet", in_channels=1)
    with pytest.raises(ValueError, match="expected input \\(N, 1, H, W\\)"):
        model(np.zeros((2, 3, 28, 28), dtype=np.float32))
