"""Learning-rate schedules: closed forms, stepping into the optimizer, plateaus, warm-up hand-over, resume."""
import math

import numpy as np
import pytest

from core.module import Parameter
from core.optim import SGD, Adam
from core.schedules import (CosineAnnealingLR, ExponentialLR, LinearWarmup, LRSchedule, MultiStepLR,
                            ReduceLROnPlateau, StepLR)


def make_opt(lrs=(0.1,)):
    return SGD([{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs])


def lrs_of(opt):
    return [g["lr"] for g in opt.param_groups]


def trace(sched, steps, metrics=None):
    """Rates in the optimizer before each of ``steps`` calls of step()."""
    out = []
    for i in range(steps):
        out.append(lrs_of(sched.optimizer))
        sched.step(None if metrics is None else metrics[i])
    return np.array(out)


PURE = {
    "step": (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda b, t: b * 0.5 ** (t // 3)),
    "multistep": (lambda o: MultiStepLR(o, [6, 2, 6], gamma=0.1),
                  lambda b, t: b * 0.1 ** ((t >= 2) + 2 * (t >= 6))),
    "exponential": (lambda o: ExponentialLR(o, gamma=0.9), lambda b, t: b * 0.9 ** t),
    "cosine": (lambda o: CosineAnnealingLR(o, T_max=8, eta_min=0.001),
               lambda b, t: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * t / 8)) / 2),
    "warmup": (lambda o: LinearWarmup(o, warmup_steps=4, start_factor=0.25),
               lambda b, t: b * (0.25 + 0.75 * min(t, 4) / 4)),
    "warmup+exp": (lambda o: LinearWarmup(o, 3, after=ExponentialLR(o, 0.5), start_factor=0.5),
                   lambda b, t: b * (0.5 + 0.5 * t / 3) if t < 3 else b * 0.5 ** (t - 3)),
}


@pytest.mark.parametrize("name", list(PURE))
def test_pure_schedules_follow_their_formula_per_group(name):
    build, formula = PURE[name]
    opt = make_opt((0.1, 0.03))
    sched = build(opt)
    got = trace(sched, 20)
    want = np.array([[formula(b, t) for b in (0.1, 0.03)] for t in range(20)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # lr_at is pure: asking about any t changes nothing.
    before = (sched.t, lrs_of(opt))
    np.testing.assert_allclose(sched.lr_at(7), want[7], rtol=1e-12)
    assert (sched.t, lrs_of(opt)) == before
    assert sched.lr == pytest.approx([formula(b, 20) for b in (0.1, 0.03)], rel=1e-12)


def test_lr_is_float_for_one_group_list_for_several():
    s1 = ExponentialLR(make_opt((0.1,)), 0.5)
    s1.step()
    assert s1.lr == pytest.approx(0.05) and isinstance(s1.lr, float)
    s2 = ExponentialLR(make_opt((0.1, 0.2)), 0.5)
    s2.step()
    assert s2.lr == pytest.approx([0.05, 0.1]) and s2.get_last_lr() == s2.lr


def test_cosine_rises_past_t_max_without_a_jump():
    s = CosineAnnealingLR(make_opt((1.0,)), T_max=4)
    assert s.lr_at(4) == pytest.approx([0.0], abs=1e-15)
    assert s.lr_at(6) == pytest.approx([0.5]) and s.lr_at(8) == pytest.approx([1.0])


def test_schedules_share_the_initial_lr():
    opt = make_opt((0.1,))
    warm = LinearWarmup(opt, 5, after=CosineAnnealingLR(opt, T_max=10), start_factor=0.1)
    assert opt.param_groups[0]["initial_lr"] == 0.1
    assert warm.lr == pytest.approx(0.01) and warm.after.base_lrs == [0.1]
    for _ in range(5):
        warm.step()
    assert warm.lr == pytest.approx(0.1) and warm.after.t == 0
    warm.step()
    assert warm.lr == pytest.approx(warm.after.lr_at(1)[0]) and warm.after.t == 1


def test_warmup_hands_over_to_plateau_with_metric():
    opt = make_opt((1.0,))
    plateau = ReduceLROnPlateau(opt, factor=0.5, patience=0)
    warm = LinearWarmup(opt, 2, after=plateau, start_factor=0.5)
    assert not warm.pure
    with pytest.raises(TypeError, match="metric history"):
        warm.lr_at(3)
    assert warm.lr == 0.5
    warm.step(5.0)           # t=1: warm-up, metric ignored
    assert warm.lr == 0.75 and plateau.best == math.inf
    warm.step(5.0)           # t=2: hand-over at the plateau schedule's initial rate
    assert warm.lr == 1.0
    warm.step(1.0)           # improvement
    warm.step(2.0)           # worse, patience 0 -> halve
    assert warm.lr == 0.5 and lrs_of(opt) == [0.5]


def test_plateau_patience_cooldown_min_lr():
    opt = make_opt((1.0, 0.1))
    s = ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=[0.3, 0.0])
    s.step(10.0)
    for _ in range(2):
        s.step(10.0)  # two bad steps: within patience
    assert s.lr == [1.0, 0.1]
    s.step(10.0)      # third bad step: reduce
    assert s.lr == [0.5, 0.05]
    s.step(10.0)      # cooldown: bad step not counted
    assert s.num_bad_steps == 0
    for _ in range(3):
        s.step(10.0)
    assert s.lr == [0.3, 0.025]  # floored at min_lr for group 0
    for _ in range(3):
        s.step(10.0)
    assert s.lr[0] == 0.3


@pytest.mark.parametrize("mode,threshold_mode,seq,reduced", [
    ("min", "rel", [1.0, 0.99995, 0.9998], False),   # 0.99995 is within rel threshold 1e-4: bad, then good
    ("min", "rel", [1.0, 0.99995, 0.99994], True),
    ("min", "abs", [1.0, 0.95, 0.9], False),
    ("max", "abs", [0.5, 0.53, 0.535], True),
    ("max", "rel", [0.5, 0.6, 0.7], False),
])
def test_plateau_threshold_modes(mode, threshold_mode, seq, reduced):
    threshold = 1e-4 if threshold_mode == "rel" else 0.04
    s = ReduceLROnPlateau(make_opt((1.0,)), mode=mode, factor=0.1, patience=1,
                          threshold=threshold, threshold_mode=threshold_mode)
    for m in seq:
        s.step(m)
    assert (s.lr < 1.0) == reduced


def test_plateau_needs_metric_and_has_no_lr_at():
    s = ReduceLROnPlateau(make_opt())
    with pytest.raises(ValueError, match="needs the monitored metric"):
        s.step()
    with pytest.raises(TypeError, match="metric history"):
        s.lr_at(1)


SCHEDULES = [
    lambda o: StepLR(o, 2, 0.5),
    lambda o: MultiStepLR(o, [3, 5]),
    lambda o: CosineAnnealingLR(o, 6, 1e-3),
    lambda o: LinearWarmup(o, 3, after=CosineAnnealingLR(o, 5)),
    lambda o: LinearWarmup(o, 2, after=ReduceLROnPlateau(o, factor=0.5, patience=1)),
    lambda o: ReduceLROnPlateau(o, factor=0.5, patience=1, cooldown=1),
]


@pytest.mark.parametrize("build", SCHEDULES, ids=["step", "multistep", "cosine", "warm+cos", "warm+plateau", "plateau"])
def test_resume_from_state_dict(build):
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98, 0.99, 1.0, 1.0, 1.2, 1.3, 1.4]
    opt = make_opt((0.2, 0.05))
    sched = build(opt)
    trace(sched, 5, metrics)
    saved, saved_opt = sched.state_dict(), opt.state_dict()
    rest = trace(sched, 7, metrics[5:])
    opt2 = make_opt((0.2, 0.05))
    sched2 = build(opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    np.testing.assert_array_equal(trace(sched2, 7, metrics[5:]), rest)


def test_load_state_dict_alone_restores_optimizer_rates():
    opt = make_opt((0.1,))
    s = StepLR(opt, 1, 0.5)
    for _ in range(3):
        s.step()
    opt2 = make_opt((0.1,))
    s2 = StepLR(opt2, 1, 0.5)
    s2.load_state_dict(s.state_dict())
    assert lrs_of(opt2) == [0.1 * 0.125] and s2.t == 3
    with pytest.raises(ValueError, match="expected a dict with 't'"):
        s2.load_state_dict({})
    with pytest.raises(ValueError, match="2 base rates"):
        s2.load_state_dict({"t": 1, "base_lrs": [0.1, 0.2]})


@pytest.mark.parametrize("call,err,match", [
    (lambda o: StepLR(o, 0), ValueError, "step_size=0"),
    (lambda o: StepLR(o, 2.5), ValueError, "step_size=2.5"),
    (lambda o: StepLR(o, 2, gamma=0.0), ValueError, "gamma=0.0"),
    (lambda o: MultiStepLR(o, [0, 3]), ValueError, "milestone=0"),
    (lambda o: MultiStepLR(o, 3), ValueError, "milestones must be a list"),
    (lambda o: ExponentialLR(o, -0.5), ValueError, "gamma=-0.5"),
    (lambda o: CosineAnnealingLR(o, 0), ValueError, "T_max=0"),
    (lambda o: CosineAnnealingLR(o, 5, eta_min=-1), ValueError, "eta_min"),
    (lambda o: LinearWarmup(o, 0), ValueError, "warmup_steps=0"),
    (lambda o: LinearWarmup(o, 3, start_factor=1.5), ValueError, "start_factor=1.5"),
    (lambda o: LinearWarmup(o, 3, after=StepLR(make_opt(), 2)), ValueError, "same optimizer"),
    (lambda o: LinearWarmup(o, 3, after="cosine"), TypeError, "after must be a schedule"),
    (lambda o: ReduceLROnPlateau(o, mode="best"), ValueError, "mode must be"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "factor=1.0"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "patience=-1"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "min_lr has 2 entries"),
    (lambda o: StepLR(object(), 2), TypeError, "param_groups"),
    (lambda o: StepLR(o, 2).lr_at(-1), ValueError, "t=-1"),
])
def test_bad_arguments_raise(call, err, match):
    with pytest.raises(err, match=match):
        call(make_opt())


def test_works_with_adam_and_base_class_is_abstract():
    opt = Adam([Parameter(np.zeros(2))], lr=1e-3)
    s = CosineAnnealingLR(opt, 10)
    s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 + math.cos(math.pi / 10)) / 2)
    with pytest.raises(NotImplementedError, match="LRSchedule"):
        LRSchedule(opt).lr_at(0)
