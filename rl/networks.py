"""Q-networks: an MLP for vector observations and the Nature-DQN CNN for 84x84 frame stacks.

Each is ``QNetwork(body, head)``: the body maps observations to features and
the head maps features to one Q-value per action — a plain ``Linear`` stack
or a :class:`DuelingHead` (Wang et al. 2016), which splits the last hidden
layer into a state-value and an advantage stream.
"""
from __future__ import annotations

import numpy as np

from core.backend import DEFAULT_DTYPE, as_generator
from core.layers import Flatten, Linear, ReLU
from core.module import Module, Sequential


class DuelingHead(Module):
    """``Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')`` (Wang et al. 2016, eq. 9).

    Args:
        in_features: feature width from the body.
        num_actions: number of Q-values.
        hidden: width of each stream's hidden layer (0 = streams are single ``Linear``s).

    Input ``(N, in_features)``, output ``(N, num_actions)``.
    """

    def __init__(self, in_features: int, num_actions: int, hidden: int = 0, *, rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        rng = as_generator(rng)

        def stream(out):
            if hidden:
                return Sequential(Linear(in_features, hidden, rng=rng, dtype=dtype), ReLU(),
                                  Linear(hidden, out, init="xavier_normal", rng=rng, dtype=dtype))
            return Sequential(Linear(in_features, out, init="xavier_normal", rng=rng, dtype=dtype))

        self.value = stream(1)
        self.advantage = stream(num_actions)

    def forward(self, x):
        v = self.value(x)
        a = self.advantage(x)
        return v + (a - a.mean(axis=1, keepdims=True))

    def backward(self, dy):
        # dQ/dV sums over actions; dQ/dA_j = dy_j - mean(dy) (the mean subtraction's Jacobian).
        dv = dy.sum(axis=1, keepdims=True)
        da = dy - dy.mean(axis=1, keepdims=True)
        return self.value.backward(dv) + self.advantage.backward(da)


class QNetwork(Module):
    """``head(body(scale * x))``: observations ``(N, *obs_shape)`` -> Q-values ``(N, num_actions)``.

    ``input_scale`` converts stored observations to the network's dtype first
    (``1/255`` for uint8 frames), so replay keeps them in their compact dtype.
    Nobody needs d(loss)/d(observation), so ``requires_input_grad`` is False.
    """

    requires_input_grad = False

    def __init__(self, body: Module, head: Module, num_actions: int, input_scale: float = 1.0):
        super().__init__()
        self.body = body
        self.head = head
        self.num_actions = int(num_actions)
        self.input_scale = float(input_scale)
        params = self.parameters()
        if not params:
            raise ValueError("QNetwork: body and head hold no parameters")
        self.compute_dtype = params[0].data.dtype  # cached: Module.dtype walks the whole tree
        # The first trainable layer need not compute d(loss)/d(input) (for a conv: a whole col2im).
        for _, module in self.body.named_modules():
            if module._parameters:
                module.requires_input_grad = False
                break

    def astype(self, dtype) -> "QNetwork":
        super().astype(dtype)
        self.compute_dtype = np.dtype(dtype)
        return self

    def forward(self, x):
        dtype = self.compute_dtype
        if self.input_scale != 1.0:
            x = np.multiply(x, self.input_scale, dtype=dtype)
        elif x.dtype != dtype:
            x = x.astype(dtype)
        return self.head(self.body(x))

    def backward(self, dy):
        """Accumulate parameter gradients; returns d(loss)/d(input), or None when the first layer skips it."""
        return self.body.backward(self.head.backward(dy))

    def predict(self, x):
        """Q-values like ``forward`` but without caching for backward (acting, TD targets).

        Linear/ReLU/Flatten run as plain matmuls; other layers fall back to their
        ``forward``. Leaves the caches of the last ``forward`` intact.
        """
        dtype = self.compute_dtype
        if self.input_scale != 1.0:
            x = np.multiply(x, self.input_scale, dtype=dtype)
        elif x.dtype != dtype:
            x = x.astype(dtype)
        return _infer(self.head, _infer(self.body, x))

    def extra_repr(self) -> str:
        return f"num_actions={self.num_actions}, input_scale={self.input_scale:g}"


def _infer(module: Module, x, owned: bool = False):
    """Cache-free forward of ``module``; ``owned`` says ``x`` is a temporary of this
    inference that may be overwritten (a ReLU after a Linear then runs in place)."""
    if isinstance(module, Sequential):
        for child in module:
            x = _infer(child, x, owned)
            owned = isinstance(child, (Linear, ReLU))  # their outputs are fresh arrays
        return x
    if isinstance(module, Linear):
        y = x @ module.weight.data.T
        if module.bias is not None:
            y += module.bias.data
        return y
    if isinstance(module, ReLU):
        return np.maximum(x, 0, out=x) if owned else np.maximum(x, 0)
    if isinstance(module, DuelingHead):
        v, a = _infer(module.value, x), _infer(module.advantage, x)
        return v + (a - a.mean(axis=1, keepdims=True))
    if isinstance(module, Flatten):
        return x.reshape(x.shape[0], -1)
    return module.forward(x)


def mlp_q_network(obs_dim: int, num_actions: int, hidden=(256, 256), *, dueling: bool = False,
                  rng=None, dtype=DEFAULT_DTYPE) -> QNetwork:
    """MLP ``obs_dim -> hidden... -> num_actions`` with ReLU; He-normal hidden layers.

    With ``dueling=True`` the last hidden layer is split into the value and
    advantage streams (each of that width), as in Wang et al. 2016.
    """
    hidden = [int(h) for h in hidden]
    if not hidden or min(hidden) < 1:
        raise ValueError(f"mlp_q_network: hidden must be a non-empty list of positive widths, got {hidden}")
    if obs_dim < 1 or num_actions < 1:
        raise ValueError(f"mlp_q_network: obs_dim and num_actions must be >= 1, got {obs_dim}, {num_actions}")
    rng = as_generator(rng)
    trunk = hidden[:-1] if dueling else hidden
    layers, width = [], obs_dim
    for h in trunk:
        layers += [Linear(width, h, rng=rng, dtype=dtype), ReLU()]
        width = h
    if dueling:
        head = DuelingHead(width, num_actions, hidden=hidden[-1], rng=rng, dtype=dtype)
    else:
        head = Sequential(Linear(width, num_actions, init="xavier_normal", rng=rng, dtype=dtype))
    return QNetwork(Sequential(*layers), head, num_actions)


def nature_cnn_q_network(obs_shape, num_actions: int, *, dueling: bool = False, rng=None,
                         dtype=DEFAULT_DTYPE) -> QNetwork:
    """The Nature-DQN network (Mnih et al. 2015) for ``(C, 84, 84)`` uint8 frame stacks.

    conv 8x8/4 (32) -> conv 4x4/2 (64) -> conv 3x3/1 (64) -> flatten -> 512 -> actions,
    ReLU after each hidden layer; inputs are scaled by 1/255 inside the network.
    """
    from core.layers import Conv2d

    obs_shape = tuple(int(s) for s in obs_shape)
    if len(obs_shape) != 3:
        raise ValueError(f"nature_cnn_q_network: obs_shape must be (C, H, W), got {obs_shape}")
    c, h, w = obs_shape
    rng = as_generator(rng)
    size_h, size_w = h, w
    for k, s in ((8, 4), (4, 2), (3, 1)):
        size_h, size_w = (size_h - k) // s + 1, (size_w - k) // s + 1
    if size_h < 1 or size_w < 1:
        raise ValueError(f"nature_cnn_q_network: frames {h}x{w} are too small for the Nature CNN (need >= 36x36)")
    body = Sequential(
        Conv2d(c, 32, 8, stride=4, rng=rng, dtype=dtype), ReLU(),
        Conv2d(32, 64, 4, stride=2, rng=rng, dtype=dtype), ReLU(),
        Conv2d(64, 64, 3, stride=1, rng=rng, dtype=dtype), ReLU(),
        Flatten(),
    )
    features = 64 * size_h * size_w
    if dueling:
        head = DuelingHead(features, num_actions, hidden=512, rng=rng, dtype=dtype)
    else:
        head = Sequential(Linear(features, 512, rng=rng, dtype=dtype), ReLU(),
                          Linear(512, num_actions, init="xavier_normal", rng=rng, dtype=dtype))
    return QNetwork(body, head, num_actions, input_scale=1.0 / 255.0)


def build_q_network(obs_shape, num_actions: int, *, network: str = "auto", hidden=(256, 256),
                    dueling: bool = False, rng=None, dtype=DEFAULT_DTYPE) -> QNetwork:
    """Pick the network for ``obs_shape``: ``"mlp"`` for vectors, ``"nature_cnn"`` for ``(C, H, W)``."""
    obs_shape = tuple(int(s) for s in obs_shape)
    if network == "auto":
        network = "nature_cnn" if len(obs_shape) == 3 else "mlp"
    if network == "mlp":
        if len(obs_shape) != 1:
            raise ValueError(f"build_q_network: the MLP needs 1-D observations, got shape {obs_shape}; flatten "
                             "them (gymnasium.wrappers.FlattenObservation) or use network='nature_cnn'")
        return mlp_q_network(obs_shape[0], num_actions, hidden, dueling=dueling, rng=rng, dtype=dtype)
    if network == "nature_cnn":
        return nature_cnn_q_network(obs_shape, num_actions, dueling=dueling, rng=rng, dtype=dtype)
    raise ValueError(f"build_q_network: network must be 'auto', 'mlp' or 'nature_cnn', got {network!r}")

