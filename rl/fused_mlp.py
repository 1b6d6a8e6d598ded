"""A fused training forward/backward for plain MLP Q-networks (``Linear``/``ReLU`` stacks).

The generic path runs every layer as a ``Module``: each call validates its
input, allocates its output and caches, and ``Parameter.accumulate_grad``
allocates every gradient. At CartPole sizes (batch 64, hidden 256-256) that
bookkeeping costs about as much as the arithmetic. :class:`FusedMLP` walks the
same layers with preallocated activation buffers, writes the gradients
straight into one flat array (whose views become ``param.grad``), and so
allocates nothing per step.

It computes what ``Linear.forward/backward`` and ``ReLU.forward/backward`` do,
with two changes of form: activations are stored feature-major, and the
backward skips the units a ReLU zeroed for the whole batch. Its Q-values and
gradients equal the generic path's up to float rounding
(``tests/rl/test_fused_mlp.py`` checks this over several optimizer steps).
"""
from __future__ import annotations

import math

import numpy as np

from core.layers import Linear, ReLU
from core.module import Sequential

from .networks import QNetwork


def mlp_linears(q) -> list | None:
    """The ``Linear`` layers of ``q`` in order when it is a plain MLP Q-network, else ``None``.

    Plain means ``QNetwork(Sequential(Linear, ReLU, ..., Linear, ReLU), Sequential(Linear))``
    with biases, one floating dtype, every parameter trainable and no input scaling:
    what :func:`rl.networks.mlp_q_network` builds without a dueling head.
    """
    if not isinstance(q, QNetwork) or q.input_scale != 1.0:
        return None
    body, head = q.body, q.head
    if not (isinstance(body, Sequential) and isinstance(head, Sequential)):
        return None
    layers, children = [], list(body)
    if len(children) % 2:
        return None
    for linear, act in zip(children[::2], children[1::2]):
        if type(linear) is not Linear or type(act) is not ReLU:
            return None
        layers.append(linear)
    head_children = list(head)
    if len(head_children) != 1 or type(head_children[0]) is not Linear:
        return None
    layers.append(head_children[0])
    dtype = layers[0].weight.data.dtype
    for layer in layers:
        if layer.bias is None:
            return None
        for p in (layer.weight, layer.bias):
            if not p.trainable or p.data.dtype != dtype:
                return None
    return layers


#: Rows per pass of :meth:`FusedMLP.predict`: activations of a few hundred rows stay in cache, where a
#: single pass over thousands of rows (a burst's TD targets) would stream megabytes through memory.
PREDICT_CHUNK = 512

#: :meth:`FusedMLP.backward` restricts a hidden layer's products to its live units when at most this
#: fraction of them is live; above it, gathering the live rows costs more than it saves.
SPARSE_FRACTION = 0.75


class FusedMLP:
    """Training forward/backward and cache-free inference for a plain MLP ``QNetwork``.

    Args:
        q: the network; :func:`mlp_linears` must accept it (raises ``ValueError`` otherwise).

    ``forward(obs (B, obs_dim)) -> (B, num_actions)`` keeps the activations;
    ``backward(dq (B, num_actions))`` then sets every parameter's ``grad`` to a
    view of :attr:`grad` (the flat gradient, in ``q.parameters()`` order). The
    parameters' ``data`` is read on every call, so ``load_state_dict`` (which
    replaces those arrays) needs no notice.
    """

    def __init__(self, q: QNetwork):
        layers = mlp_linears(q)
        if layers is None:
            raise ValueError("FusedMLP: the network is not a plain Linear/ReLU MLP Q-network")
        self.q = q
        self.layers = layers
        self.params = [p for layer in layers for p in (layer.weight, layer.bias)]
        self.dtype = layers[0].weight.data.dtype
        self.grad = None        # flat gradient, allocated by the first backward (inference needs none)
        self.grad_views = None
        self._train_buffers: dict = {}  # batch size -> (layer outputs, input-gradient scratch, ReLU masks)
        self._predict_hidden = None     # hidden-layer outputs of one PREDICT_CHUNK-row pass
        self._zero_rows: dict = {}      # width -> zeros (n, width): the other operand of ReLU's maximum
        self._cache = None              # (input, its buffers) of the last forward, for backward

    def usable(self) -> bool:
        """Whether the network is still what this was built for (dtype, trainable flags unchanged)."""
        dtype = self.dtype  # "is" first: arrays of one builtin dtype share its instance, and == costs more
        return all(p.trainable and (p.data.dtype is dtype or p.data.dtype == dtype) for p in self.params)

    def _input(self, x):
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def _zeros(self, n: int, width: int):
        # np.maximum(h, 0) with a scalar 0 runs ~4x slower than against a zeros array of h's shape.
        z = self._zero_rows.get(width)
        if z is None or len(z) < n:
            z = self._zero_rows[width] = np.zeros((n, width), dtype=self.dtype)
        return z[:n]

    def _batch_buffers(self, n: int):
        bufs = self._train_buffers.get(n)
        if bufs is None:
            if len(self._train_buffers) >= 8:  # a caller cycling through batch sizes: keep memory bounded
                self._train_buffers.clear()
            widths = [layer.out_features for layer in self.layers]
            # feature-major: row f of outs[i] is unit f of layer i over the batch
            outs = [np.empty((w, n), dtype=self.dtype) for w in widths]
            grads = [np.empty((w, n), dtype=self.dtype) for w in widths[:-1]]
            masks = [np.empty((w, n), dtype=bool) for w in widths[:-1]]
            zeros = [np.zeros((w, n), dtype=self.dtype) for w in widths[:-1]]  # see _zeros
            # Sums over the batch (a row of a feature-major array) as products with ones: a
            # matrix-vector product runs ~4x faster than np.add.reduce(axis=1) over 64-wide rows.
            ones = np.ones(n, dtype=self.dtype)
            sums = [np.empty(w, dtype=self.dtype) for w in widths[:-1]]
            bufs = self._train_buffers[n] = (outs, grads, masks, zeros, ones, sums)
        return bufs

    # ------------------------------------------------------------- training
    def forward(self, x):
        """Q-values ``(B, num_actions)`` of ``x (B, obs_dim)``, caching for :meth:`backward`.

        The result is a (transposed) view of an internal buffer, overwritten by the next
        ``forward`` of the same batch size.

        Activations are kept feature-major, ``(units, B)``: ``W @ h^T`` runs at BLAS's
        full rate, where ``h @ W^T`` (the batch-major form) makes OpenBLAS pack the
        whole weight matrix transposed on every call, ~40% slower at ``B = 64``.
        """
        x = self._input(x)
        n = len(x)
        bufs = self._batch_buffers(n)
        outs, zeros = bufs[0], bufs[3]
        last = len(self.layers) - 1
        h = x.T
        for i, layer in enumerate(self.layers):
            out = outs[i]
            np.matmul(layer.weight.data, h, out=out)
            out += layer.bias.data[:, None]
            if i != last:
                np.maximum(out, zeros[i], out=out)
            h = out
        self._cache = (x, bufs)
        return h.T

    def backward(self, dq) -> None:
        """Gradients of ``sum(dq * Q)`` into :attr:`grad`; each parameter's ``grad`` becomes its view.

        Overwrites (does not accumulate into) earlier gradients.

        Units a ReLU zeroed for the whole batch ("dead" for it: a third to two thirds
        of a DQN MLP's second layer) have zero rows in ``dz``, so their weight-gradient
        rows are zero and they add nothing to the gradient below: the two large
        products run on the live units only (:data:`SPARSE_FRACTION`). Exact up to
        float summation order.
        """
        if self._cache is None:
            raise RuntimeError("FusedMLP: backward() called before forward()")
        if self.grad is None:
            sizes = [p.data.size for p in self.params]
            self.grad = np.zeros(sum(sizes), dtype=self.dtype)
            bounds = np.cumsum([0] + sizes)
            self.grad_views = [self.grad[a:b].reshape(p.data.shape)
                               for a, b, p in zip(bounds[:-1], bounds[1:], self.params)]
        x, (outs, grads, masks, _, ones, sums) = self._cache
        views = self.grad_views
        last = len(self.layers) - 1
        dz = dq.T  # (num_actions, B)
        for i in range(last, -1, -1):
            # z = W h + b  =>  dW = dz h^T,  db = sum_batch dz,  dh = W^T dz;  ReLU: dz_prev = dh * [h > 0]
            h = x.T if i == 0 else outs[i - 1]
            weight = self.layers[i].weight.data
            np.matmul(dz, ones, out=views[2 * i + 1])
            live = None
            if i != last:  # ReLU outputs are >= 0: a unit is live when its sum over the batch is > 0
                live = np.matmul(outs[i], ones, out=sums[i]).nonzero()[0]
                if len(live) > SPARSE_FRACTION * len(weight):
                    live = None
            if live is None:
                np.matmul(dz, h.T, out=views[2 * i])
            else:
                dz = np.take(dz, live, axis=0)  # (live, B); take: faster than fancy indexing
                views[2 * i].fill(0)
                views[2 * i][live] = dz @ h.T
                weight = np.take(weight, live, axis=0)
            if i:
                dh = grads[i - 1]
                np.matmul(weight.T, dz, out=dh)
                np.greater(h, 0, out=masks[i - 1])
                np.multiply(dh, masks[i - 1], out=dh)
                dz = dh
        for p, g in zip(self.params, views):
            p.grad = g

    def clip_grad_norm(self, max_norm: float, eps: float = 1e-6) -> float:
        """``core.optim.clip_grad_norm`` on the flat gradient: one dot product, one scaling pass."""
        if self.grad is None:
            return 0.0
        total = math.sqrt(float(np.dot(self.grad, self.grad)))
        if not math.isfinite(total):
            return total
        coef = max_norm / (total + eps)
        if coef < 1.0:
            self.grad *= coef
        return total

    # ------------------------------------------------------------ inference
    def predict(self, x):
        """Q-values ``(N, num_actions)`` without touching the training caches (acting, TD targets).

        More than :data:`PREDICT_CHUNK` rows run that many at a time through reused buffers.
        """
        x = self._input(x)
        n = len(x)
        if n == 1:  # acting in one env: matrix-vector products, no (1, width) set-up
            return self._predict_one(x[0])[None]
        if n <= PREDICT_CHUNK:  # small batches: a single pass
            return self._predict_pass(x)
        out = np.empty((n, self.layers[-1].out_features), dtype=self.dtype)
        if self._predict_hidden is None:
            self._predict_hidden = [np.empty((PREDICT_CHUNK, layer.out_features), dtype=self.dtype)
                                    for layer in self.layers[:-1]]
        hidden = self._predict_hidden
        for start in range(0, n, PREDICT_CHUNK):
            h = x[start:start + PREDICT_CHUNK]
            self._predict_pass(h, [buf[:len(h)] for buf in hidden], out[start:start + len(h)])
        return out

    def _predict_one(self, h):
        """Q-values ``(num_actions,)`` of one observation ``h (obs_dim,)``."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer.weight.data @ h
            h += layer.bias.data
            if i != last:
                np.maximum(h, 0, out=h)
        return h

    def _predict_pass(self, h, hidden=None, out=None):
        """One inference pass, into ``hidden`` (per hidden layer) and ``out`` when given, else new arrays."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            o = out if i == last else (None if hidden is None else hidden[i])
            if o is None:
                o = h @ layer.weight.data.T
            else:
                np.matmul(h, layer.weight.data.T, out=o)
            o += layer.bias.data
            if i != last:
                np.maximum(o, self._zeros(len(h), layer.out_features), out=o)
            h = o
        return h
