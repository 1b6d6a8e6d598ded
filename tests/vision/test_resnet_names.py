"""Parameter names and layouts match torchvision's, so its ResNet/VGG checkpoints load directly.

The expected state-dict keys and shapes below are torchvision's
``resnet18()`` and ``vgg16()`` (ImageNet, 1000 classes), written out in the
order ``state_dict()`` yields them.
"""
from __future__ import annotations

import numpy as np
import pytest

from vision.models import build_model, resnet18, resnet34, vgg16, vgg16_bn

RESNET18_KEYS = """
conv1.weight 64 3 7 7
bn1.weight 64
bn1.bias 64
bn1.running_mean 64
bn1.running_var 64
bn1.num_batches_tracked
layer1.0.conv1.weight 64 64 3 3
layer1.0.bn1.weight 64
layer1.0.bn1.bias 64
layer1.0.bn1.running_mean 64
layer1.0.bn1.running_var 64
layer1.0.bn1.num_batches_tracked
layer1.0.conv2.weight 64 64 3 3
layer1.0.bn2.weight 64
layer1.0.bn2.bias 64
layer1.0.bn2.running_mean 64
layer1.0.bn2.running_var 64
layer1.0.bn2.num_batches_tracked
layer1.1.conv1.weight 64 64 3 3
layer1.1.bn1.weight 64
layer1.1.bn1.bias 64
layer1.1.bn1.running_mean 64
layer1.1.bn1.running_var 64
layer1.1.bn1.num_batches_tracked
layer1.1.conv2.weight 64 64 3 3
layer1.1.bn2.weight 64
layer1.1.bn2.bias 64
layer1.1.bn2.running_mean 64
layer1.1.bn2.running_var 64
layer1.1.bn2.num_batches_tracked
layer2.0.conv1.weight 128 64 3 3
layer2.0.bn1.weight 128
layer2.0.bn1.bias 128
layer2.0.bn1.running_mean 128
layer2.0.bn1.running_var 128
layer2.0.bn1.num_batches_tracked
layer2.0.conv2.weight 128 128 3 3
layer2.0.bn2.weight 128
layer2.0.bn2.bias 128
layer2.0.bn2.running_mean 128
layer2.0.bn2.running_var 128
layer2.0.bn2.num_batches_tracked
layer2.0.downsample.0.weight 128 64 1 1
layer2.0.downsample.1.weight 128
layer2.0.downsample.1.bias 128
layer2.0.downsample.1.running_mean 128
layer2.0.downsample.1.running_var 128
layer2.0.downsample.1.num_batches_tracked
layer2.1.conv1.weight 128 128 3 3
layer2.1.bn1.weight 128
layer2.1.bn1.bias 128
layer2.1.bn1.running_mean 128
layer2.1.bn1.running_var 128
layer2.1.bn1.num_batches_tracked
layer2.1.conv2.weight 128 128 3 3
layer2.1.bn2.weight 128
layer2.1.bn2.bias 128
layer2.1.bn2.running_mean 128
layer2.1.bn2.running_var 128
layer2.1.bn2.num_batches_tracked
layer3.0.conv1.weight 256 128 3 3
layer3.0.bn1.weight 256
layer3.0.bn1.bias 256
layer3.0.bn1.running_mean 256
layer3.0.bn1.running_var 256
layer3.0.bn1.num_batches_tracked
layer3.0.conv2.weight 256 256 3 3
layer3.0.bn2.weight 256
layer3.0.bn2.bias 256
layer3.0.bn2.running_mean 256
layer3.0.bn2.running_var 256
layer3.0.bn2.num_batches_tracked
layer3.0.downsample.0.weight 256 128 1 1
layer3.0.downsample.1.weight 256
layer3.0.downsample.1.bias 256
layer3.0.downsample.1.running_mean 256
layer3.0.downsample.1.running_var 256
layer3.0.downsample.1.num_batches_tracked
layer3.1.conv1.weight 256 256 3 3
layer3.1.bn1.weight 256
layer3.1.bn1.bias 256
layer3.1.bn1.running_mean 256
layer3.1.bn1.running_var 256
layer3.1.bn1.num_batches_tracked
layer3.1.conv2.weight 256 256 3 3
layer3.1.bn2.weight 256
layer3.1.bn2.bias 256
layer3.1.bn2.running_mean 256
layer3.1.bn2.running_var 256
layer3.1.bn2.num_batches_tracked
layer4.0.conv1.weight 512 256 3 3
layer4.0.bn1.weight 512
layer4.0.bn1.bias 512
layer4.0.bn1.running_mean 512
layer4.0.bn1.running_var 512
layer4.0.bn1.num_batches_tracked
layer4.0.conv2.weight 512 512 3 3
layer4.0.bn2.weight 512
layer4.0.bn2.bias 512
layer4.0.bn2.running_mean 512
layer4.0.bn2.running_var 512
layer4.0.bn2.num_batches_tracked
layer4.0.downsample.0.weight 512 256 1 1
layer4.0.downsample.1.weight 512
layer4.0.downsample.1.bias 512
layer4.0.downsample.1.running_mean 512
layer4.0.downsample.1.running_var 512
layer4.0.downsample.1.num_batches_tracked
layer4.1.conv1.weight 512 512 3 3
layer4.1.bn1.weight 512
layer4.1.bn1.bias 512
layer4.1.bn1.running_mean 512
layer4.1.bn1.running_var 512
layer4.1.bn1.num_batches_tracked
layer4.1.conv2.weight 512 512 3 3
layer4.1.bn2.weight 512
layer4.1.bn2.bias 512
layer4.1.bn2.running_mean 512
layer4.1.bn2.running_var 512
layer4.1.bn2.num_batches_tracked
fc.weight 1000 512
fc.bias 1000
"""
VGG16_KEYS = """
features.0.weight 64 3 3 3
features.0.bias 64
features.2.weight 64 64 3 3
features.2.bias 64
features.5.weight 128 64 3 3
features.5.bias 128
features.7.weight 128 128 3 3
features.7.bias 128
features.10.weight 256 128 3 3
features.10.bias 256
features.12.weight 256 256 3 3
features.12.bias 256
features.14.weight 256 256 3 3
features.14.bias 256
features.17.weight 512 256 3 3
features.17.bias 512
features.19.weight 512 512 3 3
features.19.bias 512
features.21.weight 512 512 3 3
features.21.bias 512
features.24.weight 512 512 3 3
features.24.bias 512
features.26.weight 512 512 3 3
features.26.bias 512
features.28.weight 512 512 3 3
features.28.bias 512
classifier.0.weight 4096 25088
classifier.0.bias 4096
classifier.3.weight 4096 4096
classifier.3.bias 4096
classifier.6.weight 1000 4096
classifier.6.bias 1000
"""


def _parse(text):
    out = []
    for line in text.strip().splitlines():
        name, *dims = line.split()
        out.append((name, tuple(int(d) for d in dims)))
    return out


def _layout(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def test_resnet18_matches_torchvision_keys_shapes_and_order():
    expected = _parse(RESNET18_KEYS)
    assert len(expected) == 122
    model = resnet18()
    assert _layout(model) == expected
    trainable = sum(int(np.prod(s)) for k, s in expected if not k.endswith(("running_mean", "running_var",
                                                                              "num_batches_tracked")))
    assert model.num_parameters() == trainable == 11_689_512


def test_resnet18_from_the_registry_keeps_the_names_for_other_class_counts():
    model = build_model("resnet18", num_classes=10, in_channels=3, input_size=(224, 224))
    names = [k for k, _ in _parse(RESNET18_KEYS)]
    assert list(model.state_dict()) == names
    assert model.fc.weight.shape == (10, 512)


def test_resnet34_has_torchvisions_block_counts_and_size():
    model = resnet34()
    blocks = {k.split(".")[0] + "." + k.split(".")[1] for k in model.state_dict() if k.startswith("layer")}
    assert sorted(blocks) == sorted([f"layer1.{i}" for i in range(3)] + [f"layer2.{i}" for i in range(4)]
                                    + [f"layer3.{i}" for i in range(6)] + [f"layer4.{i}" for i in range(3)])
    assert model.num_parameters() == 21_797_672


def test_vgg16_matches_torchvision_keys_shapes_and_order():
    expected = _parse(VGG16_KEYS)
    assert sum(int(np.prod(s)) for _, s in expected) == 138_357_544
    # The 4096-wide classifier is 0.5 GB of float32; a narrow one keeps every name and conv shape.
    model = vgg16(hidden=8)
    narrowed = [(k, tuple(8 if d == 4096 else d for d in s)) for k, s in expected]
    assert _layout(model) == narrowed


def test_vgg16_bn_interleaves_batchnorm_like_torchvision():
    keys = list(vgg16_bn(hidden=8).state_dict())
    assert keys[:8] == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
                        "features.3.weight"]
    assert "features.40.weight" in keys and "features.41.running_var" in keys  # last conv and its BN
    assert "features.43.weight" not in keys  # the final max pool
    assert keys[-6:] == ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
                         "classifier.6.weight", "classifier.6.bias"]


def test_a_torchvision_style_state_dict_loads_and_a_foreign_one_is_refused_by_name():
    model = resnet18(num_classes=10, widths=(4, 8, 8, 8), input_size=(224, 224))
    state = {k: np.full(v.shape, 0.5, dtype=v.dtype) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert float(model.layer3[1].conv2.weight.data.mean()) == 0.5
    bad = dict(state)
    bad["fc.weight"] = np.zeros((1000, 8), dtype=np.float32)
    bad["layer1.0.conv3.weight"] = np.zeros((4, 4, 1, 1), dtype=np.float32)
    del bad["bn1.running_mean"]
    with pytest.raises(ValueError) as err:
        model.load_state_dict(bad)
    message = str(err.value)
    assert "fc.weight: checkpoint (1000, 8) vs model (10, 8)" in message
    assert "layer1.0.conv3.weight" in message and "bn1.running_mean" in message


def _torch_resnet(widths, layers, num_classes):
    """torchvision's ResNet/BasicBlock written out in plain torch (torchvision itself is not required)."""
    nn = pytest.importorskip("torch").nn

    class Block(nn.Module):
        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes = widths[0]
            for i, (planes, n) in enumerate(zip(widths, layers)):
                stride = 1 if i == 0 else 2
                down = None
                if stride != 1 or inplanes != planes:
                    down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                blocks = [Block(inplanes, planes, stride, down)]
                blocks += [Block(planes, planes, 1, None) for _ in range(n - 1)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                inplanes = planes
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[-1], num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for i in range(len(widths)):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(self.avgpool(x).flatten(1))

    return Net()


def test_resnet_matches_a_torch_reference_forward_backward_and_running_stats():
    torch = pytest.importorskip("torch")
    widths = (4, 8, 8, 16)
    ours = resnet18(num_classes=5, widths=widths, input_size=(64, 64), rng=0).astype(np.float64)
    ref = _torch_resnet(widths, (2, 2, 2, 2), 5).double()
    ref.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}, strict=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    dy = np.random.default_rng(1).standard_normal((2, 5))
    y = ours(x)
    ours.requires_input_grad = True
    dx = ours.backward(dy)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, p in ref.named_parameters():
        ours_grad = dict(ours.named_parameters())[name].grad
        np.testing.assert_allclose(ours_grad, p.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    after = ours.state_dict()
    for name, v in ref.state_dict().items():  # running statistics updated the same way
        np.testing.assert_allclose(after[name], v.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    ours.eval()
    ref.eval()
    np.testing.assert_allclose(ours(x), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-10)
