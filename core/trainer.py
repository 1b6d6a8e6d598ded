"""One supervised training loop for classification and segmentation.

Epochs of shuffled mini-batches -> forward -> loss -> backward -> (clip) ->
optimizer step, validation after each epoch, a metrics history, callbacks,
and checkpoints from which ``fit(resume=True)`` continues with results
identical to an uninterrupted run.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .callbacks import Callback, Checkpoint, CSVLogger, LRSchedule, NaNGuard, ProgressBar
from .metrics import correct_count
from .module import Module


def _generator_attributes(model: Module):
    """Yield ``(key, generator)`` for every Generator a module holds (Dropout masks etc.)."""
    for name, mod in model.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, np.random.Generator):
                yield (f"{name}.{attr}" if name else attr), value


class Trainer:
    """Train ``model`` with ``loss`` and ``optimizer``.

    Args:
        model: a ``Module`` mapping a batch ``(N, ...)`` to logits ``(N, K)`` or ``(N, K, H, W)``.
        loss: a ``core.losses`` object (``loss(pred, target) -> float``, ``loss.backward()``).
        optimizer: a ``core.optim`` optimizer over the model's parameters.
        schedule: optional ``core.schedules`` schedule, stepped every epoch
            (``schedule_interval="step"``: every batch); ``ReduceLROnPlateau``
            receives ``schedule_monitor`` (default ``val_loss``).
        callbacks: extra ``Callback`` objects (a NaN/Inf guard is always on).
        run_dir: when given, ``metrics.csv``, ``learning_curves.png`` and
            ``checkpoints/{last,best}.npz`` are written there.
        grad_clip: clip the global gradient norm to this value before each step.
        ignore_index: label ignored by the accuracy metric (segmentation).
        progress: show a tqdm progress bar.
    """

    def __init__(self, model: Module, loss, optimizer, *, schedule=None, schedule_interval: str = "epoch",
                 schedule_monitor: str | None = None, callbacks=(), run_dir=None,
                 checkpoint_every: int = 1, monitor: str = "val_loss", grad_clip: float | None = None,
                 ignore_index: int | None = None, progress: bool = True):
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a core Module, got {type(model).__name__}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.schedule = schedule
        self.grad_clip = grad_clip
        self.ignore_index = ignore_index
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.history: list[dict] = []
        self.epoch = 0
        self.global_step = 0
        self.epochs = 0
        self.batches_per_epoch = 0
        self.stop_training = False
        self.stop_reason = ""

        cbs: list[Callback] = [NaNGuard()]
        if progress:
            cbs.append(ProgressBar())
        if schedule is not None:
            if schedule_monitor is None and type(schedule).__name__ == "ReduceLROnPlateau":
                schedule_monitor = "val_loss"
            cbs.append(LRSchedule(schedule, schedule_interval, schedule_monitor))
        user = list(callbacks)
        for cb in user:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback objects, got {type(cb).__name__}")
        # Checkpoints go last so the state they save includes every other callback's update.
        cbs.extend(cb for cb in user if not isinstance(cb, Checkpoint))
        if self.run_dir is not None:
            cbs.append(CSVLogger(self.run_dir / "metrics.csv"))
            if not any(isinstance(cb, Checkpoint) for cb in user):
                cbs.append(Checkpoint(self.run_dir / "checkpoints", every=checkpoint_every, monitor=monitor))
        cbs.extend(cb for cb in user if isinstance(cb, Checkpoint))
        self.callbacks = cbs

    # ----------------------------------------------------------------- loop
    def fit(self, train_loader, val_loader=None, epochs: int = 10, resume: bool = False) -> list[dict]:
        """Train for ``epochs`` total epochs; returns the history (one dict per epoch).

        ``resume=True`` loads ``run_dir/checkpoints/last.npz`` (when it exists)
        and continues from the epoch after it.
        """
        if epochs < 1:
            raise ValueError(f"Trainer.fit: epochs must be >= 1, got {epochs}")
        self.epochs = epochs
        self.batches_per_epoch = len(train_loader)
        start_epoch = 0
        if resume:
            if self.run_dir is None:
                raise ValueError("Trainer.fit(resume=True) needs run_dir to find checkpoints/last.npz")
            last = self.run_dir / "checkpoints" / "last.npz"
            if last.exists():
                start_epoch = self.load_checkpoint(last)
        self.model.requires_input_grad = False  # the data needs no gradient
        self.stop_training = False
        self._call("on_fit_start", self)
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            self._call("on_epoch_start", self, epoch)
            logs = {"epoch": epoch + 1, **self._train_epoch(train_loader)}
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
            self.history.append(logs)
            self._call("on_epoch_end", self, epoch, logs)
            if self.stop_training:
                break
        self._call("on_fit_end", self)
        if self.run_dir is not None and self.history:
            from .plots import plot_learning_curves

            families = [m for m in ("loss", "accuracy") if m in self.history[-1]]
            plot_learning_curves(self.history, self.run_dir / "learning_curves.png", metrics=families)
        return self.history

    def _train_epoch(self, loader) -> dict:
        model, loss_fn, opt = self.model, self.loss, self.optimizer
        model.train()
        params = model.parameters(trainable_only=True)
        loss_sum, correct, counted, samples = 0.0, 0, 0, 0
        start = time.perf_counter()
        for batch, (xb, yb) in enumerate(loader):
            logits = model(xb)
            loss = float(loss_fn(logits, yb))
            n = len(xb)
            self.global_step += 1
            logs = {"loss": loss, "batch": batch, "batch_size": n}
            self._call("on_batch_end", self, self.global_step, logs)  # NaN guard runs before the update
            opt.zero_grad()
            model.backward(loss_fn.backward())
            if self.grad_clip is not None:
                from .optim import clip_grad_norm

                clip_grad_norm(params, self.grad_clip)
            opt.step()
            loss_sum += loss * n
            samples += n
            if logits.ndim >= 2 and logits.shape[1] > 1:
                c, k = correct_count(logits, yb, self.ignore_index)
                correct += c
                counted += k
        out = {"loss": loss_sum / max(samples, 1),
               "samples_per_s": samples / max(time.perf_counter() - start, 1e-9)}
        if counted:
            out["accuracy"] = correct / counted
        return out

    def evaluate(self, loader) -> dict:
        """Mean loss and accuracy over ``loader`` in eval mode (Dropout off, BN running stats)."""
        model = self.model
        was_training = model.training
        model.eval()
        loss_sum, correct, counted, samples = 0.0, 0, 0, 0
        try:
            for xb, yb in loader:
                logits = model(xb)
                n = len(xb)
                loss_sum += float(self.loss(logits, yb)) * n
                samples += n
                if logits.ndim >= 2 and logits.shape[1] > 1:
                    c, k = correct_count(logits, yb, self.ignore_index)
                    correct += c
                    counted += k
        finally:
            model.train(was_training)
        out = {"loss": loss_sum / max(samples, 1)}
        if counted:
            out["accuracy"] = correct / counted
        return out

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    # ---------------------------------------------------------- checkpoints
    def save_checkpoint(self, path, epochs_done: int) -> None:
        """Atomically write model, optimizer, schedule, RNG states, history and callback states."""
        from .serialization import save_checkpoint

        rng_states = {k: g.bit_generator.state for k, g in _generator_attributes(self.model)}
        extra = {
            "epochs_done": int(epochs_done),
            "global_step": int(self.global_step),
            "history": self.history,
            "rng_states": rng_states,
            "callbacks": [cb.state_dict() for cb in self.callbacks],
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, model=self.model, optimizer=self.optimizer,
                        schedule=self.schedule, extra=extra)

    def load_checkpoint(self, path) -> int:
        """Restore everything ``save_checkpoint`` wrote; returns the number of epochs done."""
        from .serialization import CheckpointError, load_checkpoint

        ckpt = load_checkpoint(path)
        self.model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        extra = ckpt.get("extra") or {}
        if "epochs_done" not in extra:
            raise CheckpointError(f"{path}: not a Trainer checkpoint (no 'epochs_done' entry)")
        gens = dict(_generator_attributes(self.model))
        for key, state in extra.get("rng_states", {}).items():
            if key in gens:
                gens[key].bit_generator.state = state
        cb_states = extra.get("callbacks", [])
        if len(cb_states) == len(self.callbacks):
            for cb, state in zip(self.callbacks, cb_states):
                if state:
                    cb.load_state_dict(state)
        if self.schedule is not None and ckpt.get("schedule") is not None:
            self.schedule.load_state_dict(ckpt["schedule"])
        self.history = list(extra.get("history", []))
        self.global_step = int(extra.get("global_step", 0))
        return int(extra["epochs_done"])
