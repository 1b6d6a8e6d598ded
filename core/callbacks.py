"""Training-loop callbacks: progress bar, metrics CSV, checkpoints, early stopping,
learning-rate schedules and the NaN/Inf guard.

A callback overrides any of the ``on_*`` hooks; it may keep state that must
survive a resume by implementing ``state_dict``/``load_state_dict`` (the
trainer stores it inside the checkpoint).
"""
from __future__ import annotations

import math
import time
from pathlib import Path


class NonFiniteLossError(FloatingPointError):
    """Raised by ``NaNGuard`` when the training loss stops being finite."""


class Callback:
    """Base class: every hook is optional."""

    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer, step: int, logs: dict) -> None: ...

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...

    def on_fit_end(self, trainer) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class NaNGuard(Callback):
    """Stop training with a clear message when the loss becomes NaN or infinite."""

    def on_batch_end(self, trainer, step, logs):
        loss = logs["loss"]
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss} at epoch {trainer.epoch + 1}, batch {logs['batch'] + 1} "
                f"(global step {step}); lower the learning rate, add gradient clipping "
                f"(grad_clip=...), or check the inputs for NaN/Inf"
            )


class ProgressBar(Callback):
    """A tqdm bar per epoch showing the running loss and throughput (samples/s)."""

    def __init__(self, leave: bool = False, file=None):
        self.leave = leave
        self.file = file
        self._bar = None

    def on_epoch_start(self, trainer, epoch):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=trainer.batches_per_epoch, desc=f"epoch {epoch + 1}/{trainer.epochs}",
                         leave=self.leave, file=self.file, unit="batch", dynamic_ncols=True)
        self._start = time.perf_counter()
        self._samples = 0
        self._loss_sum = 0.0

    def on_batch_end(self, trainer, step, logs):
        if self._bar is None:
            return
        self._samples += logs["batch_size"]
        self._loss_sum += logs["loss"] * logs["batch_size"]
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._bar.set_postfix(loss=f"{self._loss_sum / self._samples:.4f}",
                              samples_s=f"{self._samples / elapsed:.0f}", refresh=False)
        self._bar.update(1)

    def on_epoch_end(self, trainer, epoch, logs):
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()
                                   if isinstance(v, float) and k != "epoch"}, refresh=False)
            self._bar.close()
            self._bar = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "auto", min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.best = None
        self.wait = 0

    def _improved(self, value) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping: metric {self.monitor!r} not logged; available: {sorted(logs)}"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                    f"(best {self.best:.4f})"
                )

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state["best"], state["wait"]


class LRSchedule(Callback):
    """Step a ``core.schedules`` schedule every epoch (or every batch).

    With ``monitor`` set (e.g. ``"val_loss"`` for ``ReduceLROnPlateau``) the
    schedule receives that metric at each epoch end.
    """

    def __init__(self, schedule, interval: str = "epoch", monitor: str | None = None):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedule: interval must be 'epoch' or 'step', got {interval!r}")
        self.schedule, self.interval, self.monitor = schedule, interval, monitor

    def on_batch_end(self, trainer, step, logs):
        if self.interval == "step":
            self.schedule.step()

    def on_epoch_end(self, trainer, epoch, logs):
        if self.interval == "epoch":
            self.schedule.step(logs[self.monitor] if self.monitor else None)

    def state_dict(self):
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state):
        self.schedule.load_state_dict(state["schedule"])


class CSVLogger(Callback):
    """Rewrite ``metrics.csv`` (atomically) with the whole history after every epoch."""

    def __init__(self, path):
        self.path = Path(path)

    def on_epoch_end(self, trainer, epoch, logs):
        from .plots import write_metrics_csv

        write_metrics_csv(self.path, trainer.history)


class Checkpoint(Callback):
    """Save ``last`` every ``every`` epochs and ``best`` when ``monitor`` improves.

    Files: ``<directory>/last.npz`` and ``<directory>/best.npz`` holding the
    full training state (see ``Trainer.save_checkpoint``); writes are atomic.
    """

    def __init__(self, directory, every: int = 1, monitor: str | None = "val_loss", mode: str = "auto"):
        if every < 1:
            raise ValueError(f"Checkpoint: every must be >= 1, got {every}")
        self.directory = Path(directory)
        self.every = every
        self.monitor = monitor
        mode = ("max" if monitor and "acc" in monitor else "min") if mode == "auto" else mode
        if mode not in ("min", "max"):
            raise ValueError(f"Checkpoint: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.mode = mode
        self.best = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor and self.monitor in logs:
            value = logs[self.monitor]
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if better:
                self.best = value
                trainer.save_checkpoint(self.directory / "best.npz", epochs_done=epoch + 1)
        if (epoch + 1) % self.every == 0 or trainer.stop_training or epoch + 1 == trainer.epochs:
            trainer.save_checkpoint(self.directory / "last.npz", epochs_done=epoch + 1)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]
