"""Optional parity with ``torch.optim``: same seeded params and grads, ~20 steps, float64."""
import warnings
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core import schedules as S  # noqa: E402
from core.module import Parameter  # noqa: E402
from core.optim import SGD, AdaGrad, Adam, AdamW, RMSprop, clip_grad_norm  # noqa: E402

SHAPES = [(5, 4), (4,), (3, 2, 2)]
STEPS = 20
TOL = dict(rtol=1e-6, atol=1e-10)

OPTIMIZERS = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (AdaGrad, torch.optim.Adagrad, dict(lr=0.1)),
    (AdaGrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.1)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.02)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.3)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]


def _id(case):
    cls, _, kw = case
    return f"{cls.__name__}[{','.join(f'{k}={v}' for k, v in kw.items())}]"


@pytest.mark.parametrize("case", OPTIMIZERS, ids=[_id(c) for c in OPTIMIZERS])
def test_optimizer_matches_torch(case):
    cls, torch_cls, kw = case
    rng = np.random.default_rng(zlib.crc32(_id(case).encode()))
    init = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    # Two groups: the second with half the learning rate, to exercise per-group hyper-parameters.
    lr2 = kw["lr"] / 2
    opt = cls([{"params": ours[:2]}, {"params": ours[2:], "lr": lr2}], **kw)
    topt = torch_cls([{"params": theirs[:2]}, {"params": theirs[2:], "lr": lr2}], **kw)
    for _ in range(STEPS):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), **TOL)
    # The running state matches torch's too (same names where torch has them).
    for p, t in zip(ours, theirs):
        for name, value in opt.state[p].items():
            if hasattr(value, "shape") and name in topt.state[t]:
                np.testing.assert_allclose(value, topt.state[t][name].numpy(), **TOL)


def _pair():
    p1, p2 = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    t1, t2 = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    ours = SGD([{"params": [p1], "lr": 0.1}, {"params": [p2], "lr": 0.02}])
    theirs = torch.optim.SGD([{"params": [t1], "lr": 0.1}, {"params": [t2], "lr": 0.02}])
    return ours, theirs


TS = torch.optim.lr_scheduler
SCHEDULES = {
    "StepLR": (lambda o: S.StepLR(o, 3, 0.5), lambda o: TS.StepLR(o, 3, 0.5)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, [2, 5, 5, 9], 0.5), lambda o: TS.MultiStepLR(o, [2, 5, 5, 9], 0.5)),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, 0.9), lambda o: TS.ExponentialLR(o, 0.9)),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, 7, 0.001), lambda o: TS.CosineAnnealingLR(o, 7, 0.001)),
    "LinearWarmup": (lambda o: S.LinearWarmup(o, 5, start_factor=0.1), lambda o: TS.LinearLR(o, 0.1, 1.0, 5)),
    "LinearWarmup+Cosine": (
        lambda o: S.LinearWarmup(o, 5, after=S.CosineAnnealingLR(o, 8, 0.001), start_factor=0.1),
        lambda o: TS.SequentialLR(o, [TS.LinearLR(o, 0.1, 1.0, 5), TS.CosineAnnealingLR(o, 8, 0.001)], [5])),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    build, torch_build = SCHEDULES[name]
    opt, topt = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about step order / deprecated epoch arguments
        sched, tsched = build(opt), torch_build(topt)
        for _ in range(STEPS + 5):
            np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                       [g["lr"] for g in topt.param_groups], rtol=1e-12)
            topt.step()
            tsched.step()
            sched.step()


@pytest.mark.parametrize("kw", [dict(mode="min", factor=0.5, patience=2, cooldown=1, min_lr=[0.01, 0.001]),
                                dict(mode="max", factor=0.3, patience=1, threshold=0.02, threshold_mode="abs")])
def test_plateau_matches_torch(kw):
    opt, topt = _pair()
    sched, tsched = S.ReduceLROnPlateau(opt, **kw), TS.ReduceLROnPlateau(topt, **kw)
    rng = np.random.default_rng(0)
    metric = 1.0
    for _ in range(40):
        metric *= 0.97 if rng.random() < 0.3 else 1.01
        sched.step(metric)
        tsched.step(metric)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                   [g["lr"] for g in topt.param_groups], rtol=1e-12)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(np.zeros(s)) for s in SHAPES]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
    total = clip_grad_norm(ours, max_norm)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
