"""Image-classification models and their registry.

Every builder takes ``num_classes``, ``in_channels`` and ``input_size``
(``(H, W)``) plus family-specific keywords (``rng``, ``dtype``, widths ...)
and returns a ``core.module.Module`` mapping ``(N, C, H, W)`` float images to
``(N, num_classes)`` logits. ``build_model(name, ...)`` looks a builder up by
name; ``MODELS`` lists them.
"""
from __future__ import annotations

from .alexnet import alexnet
from .book import deep_conv_net, simple_conv_net
from .efficientnet_lite import efficientnet_lite0
from .inception import BasicConv2d, InceptionBlock, inception_small
from .lenet import lenet5
from .resnet import BasicBlock, ResNet, cifar_resnet, resnet18, resnet20, resnet32, resnet34, resnet44, resnet56
from .summary import LayerInfo, format_summary, summarize
from .vgg import vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn, vgg_small

__all__ = ["MODELS", "build_model", "model_names", "summarize", "format_summary", "LayerInfo",
           "lenet5", "simple_conv_net", "deep_conv_net", "alexnet", "vgg", "vgg11", "vgg11_bn", "vgg13",
           "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vgg_small", "InceptionBlock", "BasicConv2d",
           "inception_small", "BasicBlock", "ResNet", "resnet18", "resnet34", "cifar_resnet", "resnet20",
           "resnet32", "resnet44", "resnet56"]


def _resnet20_wide(num_classes=10, in_channels=1, input_size=(28, 28), **kw):
    """ResNet-20 with doubled widths (32, 64, 128), 1x1-projection shortcuts."""
    kw.setdefault("widths", (32, 64, 128))
    kw.setdefault("shortcut", "B")
    return cifar_resnet(20, num_classes, in_channels, input_size, **kw)


#: Registry: name -> builder ``f(num_classes, in_channels, input_size, **kw)``.
MODELS = {
    "lenet5": lenet5,
    "simpleconvnet": simple_conv_net,
    "deepconvnet": deep_conv_net,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg11_bn": vgg11_bn,
    "vgg13": vgg13,
    "vgg13_bn": vgg13_bn,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "vgg19": vgg19,
    "vgg19_bn": vgg19_bn,
    "vgg_small": vgg_small,
    "inception_small": inception_small,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet20": resnet20,
    "resnet20_wide": _resnet20_wide,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "efficientnet_lite0": efficientnet_lite0,
}


def model_names() -> list:
    """Registered model names, sorted."""
    return sorted(MODELS)


def build_model(name: str, num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), **kw):
    """Build the registered model ``name`` (case-insensitive; ``-`` and ``_`` are interchangeable).

    Extra keywords go to the builder (e.g. ``rng=0``, ``dtype=np.float64``,
    ``width=0.5``). Unknown names raise ``ValueError`` listing the valid ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"build_model: name must be a str, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        key = key.replace("_", "")
        if key not in MODELS:
            raise ValueError(f"build_model: unknown model {name!r}; valid models: {', '.join(model_names())}")
    return MODELS[key](num_classes=num_classes, in_channels=in_channels, input_size=input_size, **kw)
