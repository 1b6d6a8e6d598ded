"""Layers: Modules that own parameters and call ``core.functional`` kernels."""
from .activations import GELU, LeakyReLU, ReLU, ReLU6, Sigmoid, Softmax, Step, Tanh  # noqa: F401
from .batchnorm import BatchNorm1d, BatchNorm2d  # noqa: F401
from .dropout import Dropout, Dropout2d  # noqa: F401
from .linear import Flatten, Identity, Linear  # noqa: F401
from .conv import Conv2d, ConvTranspose2d  # noqa: F401
from .lrn import LocalResponseNorm  # noqa: F401
from .pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool, GlobalAvgPool2d, MaxPool2d  # noqa: F401
from .resize import Concat, Upsample, ZeroPad2d  # noqa: F401
