"""Batch normalisation (Ioffe & Szegedy 2015) with PyTorch's semantics and state names.

Training normalises with the batch mean and the *biased* batch variance and
updates ``running_mean``/``running_var`` with the *unbiased* variance:
``running = (1 - momentum) * running + momentum * batch`` (``momentum=None``:
cumulative average over ``num_batches_tracked``). Evaluation uses the running
statistics. With ``track_running_stats=False`` batch statistics are used in
both modes and the three buffers are ``None`` (absent from ``state_dict``).
"""
from __future__ import annotations

import numpy as np

from ..backend import DEFAULT_DTYPE, check_float_dtype, get_array_module
from ..module import Module, Parameter
from ._validation import float_input, require_forward


class _BatchNorm(Module):
    _layouts: dict = {}  # ndim -> shape description, set by subclasses

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=DEFAULT_DTYPE):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        dtype = check_float_dtype(dtype, name)
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = None
            self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._cache = None

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")

    def _param_dtype(self):
        if self.weight is not None:
            return self.weight.data.dtype
        if self.running_mean is not None:
            return self.running_mean.dtype
        return None

    def _check(self, x):
        name = f"{type(self).__name__}({self.num_features})"
        x = float_input(x, name, self._param_dtype())
        if x.ndim not in self._layouts or x.shape[1] != self.num_features:
            expected = " or ".join(self._layouts[n].format(c=self.num_features) for n in sorted(self._layouts))
            raise ValueError(f"{name}: expected input {expected}, got shape {x.shape}")
        return x

    def forward(self, x):
        """Normalise per channel (axis 1) over the batch and any trailing axes."""
        x = self._check(x)
        xp = get_array_module(x)
        c = self.num_features
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, c) + (1,) * (x.ndim - 2)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            count = x.size // c
            if count <= 1:
                raise ValueError(
                    f"{type(self).__name__}({c}): expected more than 1 value per channel when training, "
                    f"got input shape {x.shape}"
                )
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(bshape)
            var = (xc * xc).mean(axis=axes)  # biased: what normalises the batch
            if self.training and self.track_running_stats:
                self._update_running(mean, var, count)
        else:
            count = None
            mean, var = self.running_mean, self.running_var
            xc = x - mean.reshape(bshape)
        inv_std = 1.0 / xp.sqrt(var + x.dtype.type(self.eps))
        xhat = xc * inv_std.reshape(bshape)
        self._cache = (xhat, inv_std, axes, bshape, count)
        if not self.affine:
            return xhat
        return xhat * self.weight.data.reshape(bshape) + self.bias.data.reshape(bshape)

    def _update_running(self, mean, var, count: int) -> None:
        self.num_batches_tracked += 1
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))  # Bessel's correction, as PyTorch does for the running estimate
        self.running_mean *= 1.0 - m
        self.running_mean += m * mean
        self.running_var *= 1.0 - m
        self.running_var += m * unbiased

    def backward(self, dy):
        xhat, inv_std, axes, bshape, count = require_forward(self._cache, type(self).__name__)
        train_w = self.affine and self.weight.trainable
        train_b = self.affine and self.bias.trainable
        batch_dx = self.requires_input_grad and count is not None
        sum_dy_xhat = (dy * xhat).sum(axis=axes) if train_w or batch_dx else None
        sum_dy = dy.sum(axis=axes) if train_b or batch_dx else None
        if train_w:
            self.weight.accumulate_grad(sum_dy_xhat)
        if train_b:
            self.bias.accumulate_grad(sum_dy)
        if not self.requires_input_grad:
            return None
        scale = inv_std * self.weight.data if self.affine else inv_std
        if count is None:
            # Running statistics are constants: y is affine in x.
            return dy * scale.reshape(bshape)
        # dx_i = (gamma / sigma) (dy_i - mean(dy) - xhat_i mean(dy xhat)) (Ioffe & Szegedy 2015, sec. 3)
        dx = dy - (sum_dy / count).reshape(bshape)
        dx -= xhat * (sum_dy_xhat / count).reshape(bshape)
        dx *= scale.reshape(bshape)
        return dx


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` (statistics over N, and L).

    Args: ``num_features=C``, ``eps=1e-5``, ``momentum=0.1`` (``None``: cumulative
    average), ``affine=True`` (learnable ``weight``/``bias`` of shape ``(C,)``),
    ``track_running_stats=True``, ``dtype``. State names match ``torch.nn.BatchNorm1d``.
    """

    _layouts = {2: "(N, {c})", 3: "(N, {c}, L)"}


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` (statistics per channel over N, H, W).

    Same arguments and state names as ``BatchNorm1d`` / ``torch.nn.BatchNorm2d``.
    """

    _layouts = {4: "(N, {c}, H, W)"}
