"""Flat parameter/gradient buffers (core.optim.flat) and Adam's single-pass paths over them."""
import numpy as np
import pytest

from core.module import Parameter
from core.optim import Adam, AdamW
from core.optim import adaptive
from core.optim.flat import flatten_parameters, joined_view

SHAPES = ((4, 3), (3,), (2, 2, 2), ())


def make_params(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def grad_stream(seed, steps, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def test_joined_view_recognises_back_to_back_views_only():
    buf = np.arange(20, dtype=np.float32)
    parts = [buf[0:6].reshape(2, 3), buf[6:9], buf[9:10].reshape(())]
    view = joined_view(parts)
    np.testing.assert_array_equal(view, buf[:10])
    view[7] = -1.0  # a view: writes reach the parts
    assert parts[1][1] == -1.0
    assert joined_view([buf[0:6], buf[7:9]]) is None          # a gap
    assert joined_view([buf[6:9], buf[0:6]]) is None          # out of order
    assert joined_view([buf[0:6], np.arange(3.0)]) is None    # another buffer
    assert joined_view([buf[0:6], buf[6:9].astype(np.float64)]) is None
    assert joined_view([buf[0:8:2]]) is None                  # not contiguous
    assert joined_view([]) is None
    assert joined_view([[1.0, 2.0]]) is None                  # not an ndarray


def test_flatten_parameters_keeps_values_and_makes_views():
    params = make_params(0)
    before = [p.data.copy() for p in params]
    flat = flatten_parameters(params)
    assert flat.shape == (sum(int(np.prod(s)) for s in SHAPES),) and flat.dtype == np.float32
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)
        assert p.data.shape == b.shape
    assert joined_view([p.data for p in params]) is not None
    flat[:] = 0.0
    assert not any(p.data.any() for p in params)


def test_flatten_parameters_rejects_mixed_dtypes():
    params = [Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(2, np.float64))]
    with pytest.raises(ValueError, match="one dtype"):
        flatten_parameters(params)
    with pytest.raises(ValueError, match="no parameters"):
        flatten_parameters([])


def run(cls, kw, steps, flat_params, flat_grads, seed=0):
    params = make_params(seed)
    if flat_params:
        flatten_parameters(params)
    grads = grad_stream(seed + 1, steps)
    if flat_grads:  # one buffer, the same view objects every step (as FusedMLP writes them)
        buf = np.empty(sum(g.size for g in grads[0]), np.float32)
        views, pos = [], 0
        for g in grads[0]:
            views.append(buf[pos:pos + g.size].reshape(g.shape))
            pos += g.size
    opt = cls(params, **kw)
    for step in grads:
        for p, g, i in zip(params, step, range(len(params))):
            if flat_grads:
                views[i][...] = g
                p.grad = views[i]
            else:
                p.grad = g
        opt.step()
    return params, opt


@pytest.mark.parametrize("cls, kw", [(Adam, dict(lr=0.01)), (Adam, dict(lr=0.01, weight_decay=0.1)),
                                     (AdamW, dict(lr=0.01, weight_decay=0.1))])
@pytest.mark.parametrize("flat_params, flat_grads", [(True, False), (False, True), (True, True)])
def test_adam_single_pass_paths_are_bit_identical(cls, kw, flat_params, flat_grads):
    ref, ref_opt = run(cls, kw, 5, False, False)
    got, opt = run(cls, kw, 5, flat_params, flat_grads)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a.data, b.data)
    flat = next(iter(opt._flat.values()))
    assert (flat._joined["data"][1] is not None) == flat_params
    if cls is AdamW or kw.get("weight_decay", 0.0) == 0.0:  # Adam's L2 term needs the copy
        assert (flat._joined["grad"][1] is not None) == flat_grads
    for s_ref, s_got in zip(ref_opt.state_dict()["state"].values(), opt.state_dict()["state"].values()):
        np.testing.assert_array_equal(s_got["exp_avg"], s_ref["exp_avg"])


def test_adam_falls_back_when_the_parameter_arrays_are_replaced():
    params, opt = run(Adam, dict(lr=0.01), 2, True, False)
    params[0].data = params[0].data.copy()  # what load_state_dict does
    params[0].grad = np.ones_like(params[0].data)
    for p in params[1:]:
        p.grad = np.ones_like(p.data)
    before = [p.data.copy() for p in params]
    opt.step()
    assert all(not np.array_equal(p.data, b) for p, b in zip(params, before))
    assert next(iter(opt._flat.values()))._joined["data"][1] is None


def test_first_moments_that_decay_out_of_range_are_flushed_on_schedule():
    """A parameter whose gradient turns zero: its moment decays by beta1 per step and is zeroed
    at the first multiple of FLUSH_EVERY after it drops below FLUSH_BELOW, never going subnormal."""
    p = Parameter(np.array([1.0, 1.0], np.float32))
    opt = Adam([p], lr=1e-3)
    p.grad = np.array([1e-20, 1.0], np.float32)
    opt.step()
    m = opt.state[p]["exp_avg"]
    assert m[0] > 0
    seen_zero_at = None
    tiny = np.finfo(np.float32).tiny
    for t in range(2, 1000):
        p.grad = np.array([0.0, 1.0], np.float32)
        opt.step()
        assert m[0] == 0 or m[0] >= tiny  # never subnormal
        if m[0] == 0 and seen_zero_at is None:
            seen_zero_at = t
    assert seen_zero_at is not None and seen_zero_at % adaptive.FLUSH_EVERY == 0
    assert m[1] > 0.5  # a live moment is untouched
