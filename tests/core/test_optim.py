"""Optimizers against plain (unfused, allocating) reference formulas, plus groups, state and clipping."""
import math
import tracemalloc

import numpy as np
import pytest

from core.module import Module, Parameter
from core.optim import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm

ALL = [SGD, AdaGrad, RMSprop, Adam, AdamW]

# (class, kwargs) covering every option; used by the resume and allocation tests.
CONFIGS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.5)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (AdaGrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    (RMSprop, dict(lr=0.01, weight_decay=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (Adam, dict(lr=0.01, weight_decay=0.01)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
CONFIG_IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in CONFIGS]


def make_params(rng, shapes=((4, 3), (3,)), dtype=np.float64):
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def set_grads(params, rng):
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(p.dtype)


# ------------------------------------------------------------------ references
def ref_sgd(x, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    buf = None
    for g in grads:
        g = g + weight_decay * x
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        x = x - lr * g
    return x


def ref_book_momentum(x, grads, lr, momentum):
    """The book's Momentum class: v = mu*v - lr*g; x += v."""
    v = np.zeros_like(x)
    for g in grads:
        v = momentum * v - lr * g
        x = x + v
    return x


def ref_book_adagrad(x, grads, lr):
    h = np.zeros_like(x)
    for g in grads:
        h = h + g * g
        x = x - lr * g / (np.sqrt(h) + 1e-7)
    return x


def ref_rmsprop(x, grads, lr, alpha=0.99, eps=1e-8, momentum=0.0, centered=False):
    v, c, buf = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    for g in grads:
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            c = alpha * c + (1 - alpha) * g
            d = g / (np.sqrt(v - c * c) + eps)
        else:
            d = g / (np.sqrt(v) + eps)
        if momentum:
            buf = momentum * buf + d
            d = buf
        x = x - lr * d
    return x


def ref_adam(x, grads, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False):
    m, v, vmax = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            x = x * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1 ** t)
        v_hat = (vmax if amsgrad else v) / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
    return x


def run(cls, kwargs, x0, grads):
    p = Parameter(x0.copy())
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    return p.data


@pytest.fixture
def problem():
    rng = np.random.default_rng(7)
    return rng.standard_normal((5, 4)), [rng.standard_normal((5, 4)) for _ in range(12)]


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.1, weight_decay=0.05),
                                dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
                                dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)])
def test_sgd_matches_reference(problem, kw):
    x0, grads = problem
    np.testing.assert_allclose(run(SGD, kw, x0, grads), ref_sgd(x0, grads, **kw), rtol=1e-12, atol=1e-12)


def test_sgd_momentum_is_the_books_momentum(problem):
    x0, grads = problem
    np.testing.assert_allclose(run(SGD, dict(lr=0.01, momentum=0.9), x0, grads),
                               ref_book_momentum(x0, grads, 0.01, 0.9), rtol=1e-12, atol=1e-12)


def test_adagrad_is_the_books_adagrad(problem):
    x0, grads = problem
    np.testing.assert_allclose(run(AdaGrad, dict(lr=0.5, eps=1e-7), x0, grads),
                               ref_book_adagrad(x0, grads, 0.5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.01, alpha=0.9, momentum=0.7),
                                dict(lr=0.01, centered=True), dict(lr=0.01, centered=True, momentum=0.5)])
def test_rmsprop_matches_reference(problem, kw):
    x0, grads = problem
    np.testing.assert_allclose(run(RMSprop, kw, x0, grads), ref_rmsprop(x0, grads, **kw), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,kw,ref_kw", [
    (Adam, dict(lr=0.01), {}),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     dict(b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1)),
    (Adam, dict(lr=0.01, amsgrad=True), dict(amsgrad=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1), dict(weight_decay=0.1, decoupled=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True), dict(weight_decay=0.1, decoupled=True, amsgrad=True)),
])
def test_adam_family_matches_reference(problem, cls, kw, ref_kw):
    x0, grads = problem
    np.testing.assert_allclose(run(cls, kw, x0, grads), ref_adam(x0, grads, kw["lr"], **ref_kw),
                               rtol=1e-10, atol=1e-12)


def test_adamw_decay_is_decoupled_from_gradient():
    # With zero gradients Adam's moments stay 0, so AdamW only shrinks the weights
    # by exactly (1 - lr*wd) per step while Adam with an L2 term moves them by ~lr.
    x0 = np.full(3, 2.0)
    zeros = [np.zeros(3)] * 5
    np.testing.assert_allclose(run(AdamW, dict(lr=0.1, weight_decay=0.5), x0, zeros), x0 * 0.95 ** 5, rtol=1e-14)
    l2 = run(Adam, dict(lr=0.1, weight_decay=0.5), x0, zeros)
    np.testing.assert_allclose(l2, x0 - 0.5, atol=5e-3)  # near sign-like steps of size lr


def test_amsgrad_keeps_running_max():
    p = Parameter(np.zeros(2))
    opt = Adam([p], lr=0.1, amsgrad=True)
    p.grad = np.array([10.0, 1.0])
    opt.step()
    peak = opt.state[p]["max_exp_avg_sq"].copy()
    p.grad = np.array([0.0, 0.0])
    opt.step()
    assert np.all(opt.state[p]["max_exp_avg_sq"] == peak)
    assert np.all(opt.state[p]["exp_avg_sq"] < peak)


# -------------------------------------------------------------- construction
@pytest.mark.parametrize("cls", ALL)
def test_empty_params_raise(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: got no parameters to optimize"):
        cls([])
    with pytest.raises(ValueError, match="no parameters"):
        cls([{"params": []}])


@pytest.mark.parametrize("cls", ALL)
def test_bad_inputs_raise(cls):
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=r"lr=-1\.0"):
        cls([p], lr=-1.0)
    with pytest.raises(TypeError, match="Module"):
        cls(Module())
    with pytest.raises(TypeError, match="ndarray"):
        cls([np.zeros(2)])
    with pytest.raises(ValueError, match="twice"):
        cls([p, p])
    with pytest.raises(ValueError, match="twice"):
        cls([{"params": [p]}, {"params": [p]}])


@pytest.mark.parametrize("call,match", [
    (lambda p: Adam([p], betas=(0.9, 1.0)), r"betas\[1\]=1\.0"),
    (lambda p: Adam([p], betas=(0.9,)), "pair"),
    (lambda p: AdamW([p], eps=-1e-8), "eps"),
    (lambda p: Adam([p], lr=float("nan")), "lr=nan"),
    (lambda p: SGD([p], momentum=1.0), "momentum=1.0"),
    (lambda p: SGD([p], nesterov=True), "nesterov"),
    (lambda p: SGD([p], momentum=0.9, dampening=0.1, nesterov=True), "dampening"),
    (lambda p: RMSprop([p], alpha=1.5), "alpha=1.5"),
    (lambda p: AdaGrad([p], lr_decay=-0.1), "lr_decay"),
    (lambda p: SGD([p], weight_decay=-1), "weight_decay"),
])
def test_invalid_hyperparameters_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(Parameter(np.zeros(2)))
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD([Parameter(np.zeros(2))], lr="0.1")


def test_param_groups_use_their_own_hyperparameters():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 1.0}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    a.grad, b.grad = np.ones(3), np.ones(3)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 1 - 0.5 * (1 + 1.0))


def test_add_param_group_for_later_unfreezing():
    head, backbone = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = Adam([head], lr=1e-2)
    opt.add_param_group({"params": [backbone], "lr": 1e-4})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="twice"):
        opt.add_param_group({"params": [head]})
    head.grad, backbone.grad = np.ones(2), np.ones(2)
    opt.step()
    np.testing.assert_allclose(1 - head.data, 1e-2, rtol=1e-6)
    np.testing.assert_allclose(1 - backbone.data, 1e-4, rtol=1e-4)


@pytest.mark.parametrize("cls", ALL)
def test_skips_frozen_and_gradless_params_and_never_touches_grad(cls):
    rng = np.random.default_rng(0)
    live, frozen, unused = make_params(rng, ((3,), (3,), (3,)))
    frozen.trainable = False
    live.grad = rng.standard_normal(3)
    frozen.grad = rng.standard_normal(3)
    before = [p.data.copy() for p in (live, frozen, unused)]
    grad_before = live.grad.copy()
    opt = cls([live, frozen, unused], lr=0.1, weight_decay=0.1)
    opt.step()
    assert not np.allclose(live.data, before[0])
    np.testing.assert_array_equal(frozen.data, before[1])
    np.testing.assert_array_equal(unused.data, before[2])
    np.testing.assert_array_equal(live.grad, grad_before)  # weight decay must not leak into p.grad
    assert frozen not in opt.state and unused not in opt.state


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=CONFIG_IDS)
def test_float32_stays_float32(cls, kw):
    rng = np.random.default_rng(1)
    params = make_params(rng, dtype=np.float32)
    opt = cls(params, **kw)
    for _ in range(3):
        set_grads(params, rng)
        opt.step()
    for p in params:
        assert p.data.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if hasattr(v, "dtype"))


def test_zero_grad():
    p = Parameter(np.ones(2))
    opt = SGD([p])
    p.grad = np.ones(2)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, 0.0)
    opt.zero_grad()
    assert p.grad is None


def test_grad_shape_mismatch_raises():
    p = Parameter(np.ones(2))
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        SGD([p]).step()


# --------------------------------------------------------------------- state
def _stringify(state_dict):
    """What a file round trip may do: string keys, 0-d arrays, lists for tuples."""
    return {
        "state": {str(k): {n: (np.asarray(v) if not hasattr(v, "shape") else v) for n, v in s.items()}
                  for k, s in state_dict["state"].items()},
        "param_groups": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                         for g in state_dict["param_groups"]],
    }


@pytest.mark.parametrize("stringify", [False, True], ids=["dict", "file-like"])
@pytest.mark.parametrize("cls,kw", CONFIGS, ids=CONFIG_IDS)
def test_resume_is_bit_identical(cls, kw, stringify):
    rng = np.random.default_rng(3)
    shapes = ((4, 3), (3,), ())  # a 0-d parameter too: its state arrays are 0-d as well
    grads = [[np.asarray(rng.standard_normal(s), dtype=np.float32) for s in shapes] for _ in range(10)]

    def build(init):
        params = [Parameter(a.copy()) for a in init]
        return params, cls([{"params": params[:1]}, {"params": params[1:], "lr": kw["lr"] / 2}], **kw)

    init = [np.asarray(rng.standard_normal(s), dtype=np.float32) for s in shapes]
    params, opt = build(init)
    for i, gs in enumerate(grads):
        if i == 5:
            snapshot = ([p.data.copy() for p in params], opt.state_dict())
            opt.param_groups[0]["lr"] *= 0.5  # as a schedule would
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()
    straight = [p.data.copy() for p in params]

    saved_params, saved_state = snapshot
    params2, opt2 = build(saved_params)
    opt2.load_state_dict(_stringify(saved_state) if stringify else saved_state)
    for i, gs in enumerate(grads[5:]):
        if i == 0:
            opt2.param_groups[0]["lr"] *= 0.5
        for p, g in zip(params2, gs):
            p.grad = g.copy()
        opt2.step()
    for a, b in zip(straight, params2):
        np.testing.assert_array_equal(a, b.data)


def test_state_dict_is_a_snapshot_and_restores_hyperparameters():
    p = Parameter(np.ones(3))
    opt = Adam([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    sd = opt.state_dict()
    m = sd["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], m)
    assert sd["param_groups"][0]["params"] == [0] and sd["state"][0]["step"] == 1
    q = Parameter(np.ones(3))
    opt2 = Adam([q], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.state[q]["step"] == 1
    del sd["param_groups"][0]["amsgrad"]  # a checkpoint from before an option existed
    opt3 = Adam([Parameter(np.ones(3))], amsgrad=True)
    opt3.load_state_dict(sd)
    assert opt3.param_groups[0]["amsgrad"] is True and opt3.param_groups[0]["lr"] == 0.1


def test_load_state_dict_rejects_mismatches():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.ones(3), np.ones(2)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="param group 0 has 2 parameters in the checkpoint, 1 here"):
        SGD([Parameter(np.ones(3))], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="1 param groups"):
        SGD([{"params": [Parameter(np.ones(3))]}, {"params": [Parameter(np.ones(2))]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"momentum_buffer.*shape \(3,\).*\(2,\)"):
        SGD([Parameter(np.ones(2)), Parameter(np.ones(3))], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="state' and 'param_groups"):
        opt.load_state_dict({"state": {}})


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=CONFIG_IDS)
def test_step_allocates_nothing_after_warmup(cls, kw):
    rng = np.random.default_rng(0)
    p = Parameter(rng.standard_normal(50_000))  # 400 kB of float64
    p.grad = rng.standard_normal(50_000)
    opt = cls([p], **kw)
    opt.step()
    opt.step()
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000, f"{cls.__name__} step allocated {peak} bytes"


# ------------------------------------------------------------------ clipping
def test_clip_grad_norm_scales_to_max_norm():
    a, b, c = Parameter(np.zeros(2)), Parameter(np.zeros(1)), Parameter(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])  # c has no gradient
    total = clip_grad_norm([a, b, c], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-6))
    assert clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([a.grad, b.grad])), 1.0, rtol=1e-5)  # untouched
    assert clip_grad_norm([c], 1.0) == 0.0


def test_clip_grad_norm_inf_and_nonfinite():
    a = Parameter(np.zeros(3))
    a.grad = np.array([-6.0, 2.0, 1.0])
    assert clip_grad_norm(a, 3.0, norm_type=math.inf) == 6.0
    np.testing.assert_allclose(a.grad, np.array([-6.0, 2.0, 1.0]) * 3.0 / (6.0 + 1e-6))
    a.grad = np.array([np.nan, 1.0, 1.0])
    assert math.isnan(clip_grad_norm([a], 1.0))
    assert a.grad[1] == 1.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([a], 0.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm([a], 1.0, norm_type=1.0)
    with pytest.raises(TypeError, match="Module"):
        clip_grad_norm(Module(), 1.0)


def test_base_class_requires_update():
    class Bare(Optimizer):
        pass

    p = Parameter(np.zeros(1))
    p.grad = np.ones(1)
    with pytest.raises(NotImplementedError, match="Bare"):
        Bare([p], dict(lr=0.1)).step()
