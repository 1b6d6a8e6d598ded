"""The supervised training loop: learning, resume equivalence, guards, callbacks, run folder."""
import csv

import numpy as np
import pytest

from core.callbacks import Callback, EarlyStopping, NonFiniteLossError
from core.data import ArrayDataset, DataLoader, train_val_split
from core.layers import Dropout, Linear, ReLU
from core.losses import CrossEntropyLoss
from core.module import Sequential
from core.optim import SGD, Adam
from core.schedules import StepLR
from core.trainer import Trainer


def blobs(n=600, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(k, 5))
    y = rng.integers(0, k, size=n)
    x = (centers[y] + rng.normal(0, 1, size=(n, 5))).astype(np.float32)
    return x, y


def make_model(seed=0, dropout=0.2):
    rng = np.random.default_rng(seed)
    return Sequential(Linear(5, 32, rng=rng), ReLU(), Dropout(dropout, rng=rng), Linear(32, 3, rng=rng))


def loaders(seed=0):
    x, y = blobs()
    tr, va = train_val_split(ArrayDataset(x, y), 0.2, stratify=True, seed=seed)
    return DataLoader(tr, batch_size=32, seed=seed), DataLoader(va, batch_size=200, shuffle=False)


def test_fit_learns_and_writes_run_folder(tmp_path):
    train, val = loaders()
    model = make_model()
    trainer = Trainer(model, CrossEntropyLoss(), Adam(model.parameters(), lr=1e-2), run_dir=tmp_path,
                      progress=False, monitor="val_accuracy")
    history = trainer.fit(train, val, epochs=5)
    assert len(history) == 5
    assert history[-1]["val_accuracy"] > 0.9
    assert history[-1]["loss"] < history[0]["loss"]
    for name in ("metrics.csv", "learning_curves.png", "checkpoints/last.npz", "checkpoints/best.npz"):
        assert (tmp_path / name).stat().st_size > 0, name
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3, 4, 5]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])


def run_training(run_dir, epochs, resume=False):
    train, val = loaders()
    model = make_model()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(model, CrossEntropyLoss(), opt, schedule=StepLR(opt, step_size=2, gamma=0.5),
                      run_dir=run_dir, progress=False)
    trainer.fit(train, val, epochs=epochs, resume=resume)
    return model, trainer


def test_resume_gives_identical_results(tmp_path):
    full_model, full = run_training(tmp_path / "full", epochs=6)
    # An "interrupted" run: 3 epochs, then a new process-like restart that resumes to 6.
    run_training(tmp_path / "part", epochs=3)
    resumed_model, resumed = run_training(tmp_path / "part", epochs=6, resume=True)
    for (name, a), (_, b) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]


def test_nan_guard_names_the_step():
    x, y = blobs()
    x[37] = np.nan
    loader = DataLoader(ArrayDataset(x, y), batch_size=10, shuffle=False)
    model = make_model(dropout=0.0)
    before = model.state_dict()
    trainer = Trainer(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), progress=False)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 4 \(global step 4\)"):
        trainer.fit(loader, epochs=1)
    # the update from the bad batch was never applied
    after = model.state_dict()
    assert all(np.isfinite(v).all() for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_early_stopping_stops():
    train, val = loaders()
    model = make_model()
    stopper = EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)
    trainer = Trainer(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.01),
                      callbacks=[stopper], progress=False)
    history = trainer.fit(train, val, epochs=20)
    assert len(history) == 2
    assert "early stopping" in trainer.stop_reason


def test_callback_hooks_and_bad_arguments():
    calls = []

    class Recorder(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            calls.append((epoch, round(logs["loss"], 6)))

    train, _ = loaders()
    model = make_model()
    trainer = Trainer(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.01),
                      callbacks=[Recorder()], progress=False)
    trainer.fit(train, epochs=2)
    assert [c[0] for c in calls] == [0, 1]
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        trainer.fit(train, epochs=0)
    with pytest.raises(TypeError, match="Callback"):
        Trainer(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.01), callbacks=[object()])
    with pytest.raises(ValueError, match="run_dir"):
        trainer.fit(train, epochs=1, resume=True)


def test_frozen_parameters_are_not_updated():
    train, _ = loaders()
    model = make_model(dropout=0.0)
    model.freeze("0")
    frozen = model[0].weight.data.copy()
    trainer = Trainer(model, CrossEntropyLoss(), Adam(model.parameters(), lr=1e-2), progress=False)
    trainer.fit(train, epochs=1)
    np.testing.assert_array_equal(model[0].weight.data, frozen)
    assert model[0].weight.grad is None
