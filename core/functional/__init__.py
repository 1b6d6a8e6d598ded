"""Stateless math: forward/backward pairs that ``core.layers`` and ``core.losses`` call."""
from .activations import (  # noqa: F401
    erf, erfc, gelu, gelu_backward, leaky_relu, leaky_relu_backward, relu, relu6, relu6_backward,
    relu_backward, sigmoid, sigmoid_backward, softmax, softmax_backward, step, step_backward, tanh,
    tanh_backward,
)
from .losses import (  # noqa: F401
    CrossEntropyCache, bce_with_logits, bce_with_logits_grad, huber, huber_grad, log_softmax, mse,
    mse_grad, reduce_loss, reduction_weight, smooth_l1, smooth_l1_grad, softmax_cross_entropy,
    softmax_cross_entropy_backward,
)
