"""Optimizers with per-coordinate step sizes: AdaGrad, RMSprop, Adam and AdamW.

All updates run in place on state arrays and reusable scratch buffers, so a
step allocates nothing after the first. ``Adam`` packs a group's moments into
flat buffers so each elementwise pass is one call for all its parameters. Formulas follow PyTorch's
``torch.optim`` (same defaults, same placement of ``eps``) so results match it.
"""
from __future__ import annotations

import math

from ..backend import get_array_module
from .flat import joined_view
from .optimizer import Optimizer, check_fraction, check_nonnegative


class AdaGrad(Optimizer):
    """Duchi et al. 2011: ``h += g*g; p -= lr_t * g / (sqrt(h) + eps)``.

    ``lr_t = lr / (1 + (t - 1) * lr_decay)`` at step ``t``; ``g`` includes the
    L2 term ``weight_decay * p``. The book's ``AdaGrad`` is this with
    ``eps=1e-7``.

    Args:
        lr: learning rate. lr_decay: per-step decay of the learning rate.
        weight_decay: L2 penalty. initial_accumulator_value: starting ``h``.
        eps: added to ``sqrt(h)`` for stability.
    """

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        group["lr_decay"] = check_nonnegative("AdaGrad", "lr_decay", group["lr_decay"])
        group["initial_accumulator_value"] = check_nonnegative(
            "AdaGrad", "initial_accumulator_value", group["initial_accumulator_value"])
        group["eps"] = check_nonnegative("AdaGrad", "eps", group["eps"])

    def _update(self, p, grad, state, group) -> None:
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
        state["step"] += 1
        clr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        g = self._decayed_grad(p, grad, group["weight_decay"], slot=0)
        h, tmp = state["sum"], self._buffer(p, 1)
        xp.multiply(g, g, out=tmp)
        h += tmp
        xp.sqrt(h, out=tmp)
        tmp += group["eps"]
        xp.divide(g, tmp, out=tmp)
        tmp *= -clr
        p.data += tmp


class RMSprop(Optimizer):
    """Tieleman & Hinton 2012: a leaky average of squared gradients scales each step.

    ::

        v = alpha * v + (1 - alpha) * g*g
        c = alpha * c + (1 - alpha) * g;  v_hat = v - c*c     (centered only)
        d = g / (sqrt(v_hat) + eps)
        buf = momentum * buf + d;  p -= lr * buf              (momentum > 0)
        p -= lr * d                                           (otherwise)

    ``centered`` normalises by an estimate of the gradient's variance
    (Graves 2013) instead of its raw second moment.
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        group["alpha"] = check_fraction("RMSprop", "alpha", group["alpha"])
        group["eps"] = check_nonnegative("RMSprop", "eps", group["eps"])
        group["momentum"] = check_fraction("RMSprop", "momentum", group["momentum"])
        group["centered"] = bool(group["centered"])

    def _update(self, p, grad, state, group) -> None:
        xp = get_array_module(p.data)
        alpha, mu = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if mu > 0.0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        g = self._decayed_grad(p, grad, group["weight_decay"], slot=0)
        v, tmp = state["square_avg"], self._buffer(p, 1)
        v *= alpha
        xp.multiply(g, 1.0 - alpha, out=tmp)
        tmp *= g
        v += tmp
        if group["centered"]:
            c = state["grad_avg"]
            c *= alpha
            xp.multiply(g, 1.0 - alpha, out=tmp)
            c += tmp
            xp.multiply(c, c, out=tmp)
            xp.subtract(v, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(v, out=tmp)
        tmp += group["eps"]
        xp.divide(g, tmp, out=tmp)
        if mu > 0.0:
            buf = state.get("momentum_buffer")
            if buf is None:  # momentum switched on after the first step
                buf = state["momentum_buffer"] = xp.zeros_like(p.data)
            buf *= mu
            buf += tmp
            xp.multiply(buf, -group["lr"], out=tmp)
        else:
            tmp *= -group["lr"]
        p.data += tmp


class Adam(Optimizer):
    """Kingma & Ba 2015, with optional AMSGrad and either L2 or decoupled weight decay.

    ::

        m = b1*m + (1-b1)*g;   v = b2*v + (1-b2)*g*g;   (v = max(v_max, v) with amsgrad)
        p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)

    The two bias corrections are folded into scalars,
    ``p -= s * m / (sqrt(v) + eps_hat)`` with ``s = lr*sqrt(1-b2^t)/(1-b1^t)``
    and ``eps_hat = eps*sqrt(1-b2^t)`` (the same value, one pass fewer).

    ``weight_decay`` here is an L2 penalty added to the gradient (so it is
    rescaled by the adaptive denominator); ``AdamW`` decays the weights
    directly instead (Loshchilov & Hutter 2019).

    Args:
        lr: step size. betas: decay rates ``(b1, b2)`` of the two moment averages.
        eps: added to the denominator. weight_decay: decay coefficient.
        amsgrad: use the running maximum of ``v`` (Reddi et al. 2018).
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))
        self._flat: dict = {}  # id(group) -> _FlatMoments (the fused path's buffers)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        name = self._name
        betas = group["betas"]
        try:
            betas = tuple(betas)
        except TypeError:
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}") from None
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (check_fraction(name, "betas[0]", betas[0]), check_fraction(name, "betas[1]", betas[1]))
        group["eps"] = check_nonnegative(name, "eps", group["eps"])
        group["amsgrad"] = bool(group["amsgrad"])

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._flat.clear()  # the restored moments are new arrays: the next step re-packs them

    def _update_group(self, group: dict, params: list) -> None:
        """Fused step: the moments of the whole group live in flat buffers, so each
        of the ~12 elementwise passes is one ufunc call over all parameters
        instead of one per parameter (the call overhead dominates for biases).

        The per-parameter ``state`` entries are views into those buffers, so
        ``state_dict`` and the per-parameter path see the same numbers, and the
        arithmetic (same operations, same order) matches ``_update`` exactly.
        AMSGrad, and groups whose parameters differ in step count or dtype, take
        the per-parameter path.
        """
        flat = None if group["amsgrad"] else self._flat_moments(group, params)
        if flat is None:
            super()._update_group(group, params)
            return
        xp = get_array_module(flat.m)
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        t = self.state[params[0]]["step"] + 1
        for p in params:
            self.state[p]["step"] = t
        decoupled = self.decoupled_weight_decay
        if decoupled and wd != 0.0:
            _add_each(params, flat.joined("data", [p.data for p in params]), None, scale=1.0 - lr * wd)
        # the caller's gradients already tile one buffer (FusedMLP's): read them there, no copy
        g = flat.joined("grad", [p.grad for p in params]) if decoupled or wd == 0.0 else None
        if g is None or g.dtype != flat.g.dtype:
            g = flat.g
            for p, view in zip(params, flat.g_views):
                if not decoupled and wd != 0.0:
                    xp.multiply(p.data, wd, out=view)
                    view += p.grad
                else:
                    xp.copyto(view, p.grad)
        _update_moments(xp, flat.m, flat.v, g, flat.tmp, b1, b2, t)
        _adam_delta(xp, flat.m, flat.v, flat.tmp, lr, b1, b2, group["eps"], t)
        _add_each(params, flat.joined("data", [p.data for p in params]), flat.tmp_views, flat.tmp)

    def _flat_moments(self, group: dict, params: list):
        """The group's flat buffers with ``state`` pointing into them; ``None`` when they cannot be shared."""
        flat = self._flat.get(id(group))
        if flat is not None and flat.serves(params, self.state):
            return flat
        dtype = params[0].data.dtype
        states = [self.state.get(p) for p in params]
        steps = {s["step"] if s else 0 for s in states}
        if len(steps) != 1 or any(p.data.dtype != dtype for p in params):
            return None
        flat = self._flat[id(group)] = _FlatMoments(params, get_array_module(params[0].data), dtype)
        for p, s, m, v in zip(params, states, flat.m_views, flat.v_views):
            if s:  # keep the running moments (a restored checkpoint, or a parameter set that changed)
                m[...] = s["exp_avg"]
                v[...] = s["exp_avg_sq"]
            else:
                s = self.state[p] = {"step": 0}
            s["exp_avg"], s["exp_avg_sq"] = m, v
        return flat

    def _update(self, p, grad, state, group) -> None:
        xp = get_array_module(p.data)
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if self.decoupled_weight_decay:
            if wd != 0.0:
                p.data *= 1.0 - lr * wd
            g = grad
        else:
            g = self._decayed_grad(p, grad, wd, slot=0)
        m, v, tmp = state["exp_avg"], state["exp_avg_sq"], self._buffer(p, 1)
        _update_moments(xp, m, v, g, tmp, b1, b2, t)
        if group["amsgrad"]:
            v_max = state.get("max_exp_avg_sq")
            if v_max is None:  # amsgrad switched on after the first step
                v_max = state["max_exp_avg_sq"] = xp.zeros_like(p.data)
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        _adam_delta(xp, m, v, tmp, lr, b1, b2, group["eps"], t)
        p.data += tmp


def _add_each(params, joined, deltas, delta=None, scale=None) -> None:
    """``p.data += delta`` (or ``p.data *= scale``) for every parameter: one call over ``joined``
    (their values, back to back) when there is one, else one per parameter (``deltas``: views)."""
    if joined is not None:
        if scale is None:
            joined += delta
        else:
            joined *= scale
    elif scale is None:
        for p, d in zip(params, deltas):
            p.data += d
    else:
        for p in params:
            p.data *= scale


#: Every FLUSH_EVERY steps, first moments smaller than FLUSH_BELOW in magnitude are set to zero.
#: The moment of a parameter whose gradient stays zero (a dead ReLU unit's weights: over half of a
#: DQN MLP's) decays by beta1 per step into the subnormal range, where every pass over it (the
#: moment update, the step, the parameter update) runs about a third slower; NumPy cannot set the
#: CPU's flush-to-zero mode, so this does its job. Survivors stay normal until the next flush
#: (float32: 2^-100 * 0.9^64 > 2^-126), and the step such a moment would add is below
#: lr * 2^-100 / eps.
FLUSH_EVERY = 64
FLUSH_BELOW = 2.0 ** -100


def _update_moments(xp, m, v, g, tmp, b1: float, b2: float, t: int) -> None:
    """``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2`` in place (``tmp``: scratch; ``t``: the step)."""
    m *= b1
    xp.multiply(g, 1.0 - b1, out=tmp)
    m += tmp
    if t % FLUSH_EVERY == 0:
        xp.abs(m, out=tmp)
        m[tmp < FLUSH_BELOW] = 0
    v *= b2
    xp.multiply(g, 1.0 - b2, out=tmp)
    tmp *= g
    v += tmp


def _adam_delta(xp, m, v, out, lr: float, b1: float, b2: float, eps: float, t: int) -> None:
    """The step to add to the parameters, into ``out``: ``-lr m_hat / (sqrt(v_hat) + eps)``.

    Bias corrections folded into scalars (Kingma & Ba 2015, sec. 2, last paragraph):
    ``-lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps sqrt(1 - b2^t))``.
    """
    root_bc2 = math.sqrt(1.0 - b2 ** t)
    step_size = lr * root_bc2 / (1.0 - b1 ** t)
    xp.sqrt(v, out=out)
    out += eps * root_bc2
    xp.divide(m, out, out=out)
    out *= -step_size


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr*weight_decay`` before the Adam step.

    Loshchilov & Hutter 2019: decaying the weights directly (rather than
    adding ``weight_decay * p`` to the gradient) keeps the regularisation
    independent of the adaptive per-coordinate scaling. Default
    ``weight_decay=0.01`` as in PyTorch.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class _FlatMoments:
    """Adam's first/second moments, packed gradients and scratch for a list of
    parameters as four contiguous 1-D buffers, with a per-parameter view of each."""

    def __init__(self, params: list, xp, dtype):
        sizes = [p.data.size for p in params]
        total = sum(sizes)
        self.params = list(params)
        self.m, self.v = xp.zeros(total, dtype=dtype), xp.zeros(total, dtype=dtype)
        self.g, self.tmp = xp.empty(total, dtype=dtype), xp.empty(total, dtype=dtype)
        bounds = [0]
        for n in sizes:
            bounds.append(bounds[-1] + n)
        spans = [(a, b, p.data.shape) for a, b, p in zip(bounds[:-1], bounds[1:], params)]
        self.m_views = [self.m[a:b].reshape(shape) for a, b, shape in spans]
        self.v_views = [self.v[a:b].reshape(shape) for a, b, shape in spans]
        self.g_views = [self.g[a:b].reshape(shape) for a, b, shape in spans]
        self.tmp_views = [self.tmp[a:b].reshape(shape) for a, b, shape in spans]
        self._joined: dict = {}  # name -> (the arrays, their joined view or None)

    def joined(self, name: str, arrays: list):
        """``joined_view(arrays)``, remembered while the same array objects come back each step."""
        known = self._joined.get(name)
        if known is not None and len(known[0]) == len(arrays) and all(a is b for a, b in zip(arrays, known[0])):
            return known[1]
        view = joined_view(arrays)
        self._joined[name] = (arrays, view)
        return view

    def serves(self, params: list, state: dict) -> bool:
        """Whether these buffers still hold exactly these parameters' moments, all at one step count."""
        if len(params) != len(self.params):
            return False
        step = None
        for p, q, m, v in zip(params, self.params, self.m_views, self.v_views):
            s = state.get(p)
            if (p is not q or s is None or s.get("exp_avg") is not m or s.get("exp_avg_sq") is not v
                    or p.data.dtype != m.dtype or p.data.shape != m.shape):
                return False
            if step is None:
                step = s["step"]
            elif s["step"] != step:
                return False
        return True
