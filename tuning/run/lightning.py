"""Tune a LightningModule as it is: a callback that reports what the module logs to the
trial's context, once per epoch, with a Lightning checkpoint to resume from.

    from tuning.run.lightning import ReportCallback

    def fit(config, context):
        report = ReportCallback(context)
        trainer = L.Trainer(max_epochs=config.training.epochs, callbacks=[report], logger=False)
        trainer.fit(MyModule(config), datamodule=MyDataModule(), ckpt_path=report.resume_from)

It reports at the end of each training epoch, after that epoch's validation and the module's
own `on_train_epoch_end` (so every metric logged by then is in the row: reporting from
`on_validation_epoch_end` would run before `train_loss` is logged, and during the sanity
check too). Its checkpoint is Lightning's own (`trainer.save_checkpoint`), so a trial that Tune
retries or `fishleg-tune resume` continues restores the loops, optimizers and schedulers the
way `trainer.fit(ckpt_path=...)` always does. It is the trial's checkpointing (a Lightning
`Checkpoint`): Lightning adds no ModelCheckpoint of its own beside it.

A non-finite metric is told apart: when a training loss of the epoch or a parameter became
non-finite, the run diverged (lower lr, raise damping); when both stayed finite, the NaN comes
from how the metric is computed or logged, and the trial fails naming that metric."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Checkpoint
from torch import Tensor

from tuning.errors import NonFiniteLoss
from tuning.run.fit import FitContext, ProtocolError

__all__ = ["ReportCallback"]

_CHECKPOINT = "trial.ckpt"


class ReportCallback(Checkpoint):
    """Report a LightningModule's logged metrics to `context` at the end of each training
    epoch, with Lightning's checkpoint. `metrics`: the logged names to report (default: every
    scalar logged), or a mapping of reported name → logged name (e.g. `{"val_loss":
    "valid/loss"}`, when the module logs under other names than the sweep's metric).
    `checkpoint`: give the trial a checkpoint each epoch (what a retry and `resume` restore
    from); False reports metrics only."""

    def __init__(
        self,
        context: FitContext,
        metrics: Sequence[str] | Mapping[str, str] | None = None,
        *,
        checkpoint: bool = True,
    ) -> None:
        super().__init__()
        self.context = context
        self.names = (
            None if metrics is None else dict(metrics) if isinstance(metrics, Mapping) else {m: m for m in metrics}
        )
        self.checkpoint = checkpoint
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._nonfinite_loss: Tensor | None = None

    @property
    def resume_from(self) -> str | None:
        """The checkpoint this trial resumes from, as a file for `trainer.fit(ckpt_path=...)`;
        None when the trial starts fresh."""
        if self.context.checkpoint is None:
            return None
        path = self._file()
        torch.save(self.context.checkpoint, path)
        return str(path)

    def _file(self) -> Path:
        """Where the checkpoint passes through on its way to and from the context."""
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="fishleg-lightning-")
        return Path(self._folder.name) / _CHECKPOINT

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed trial must continue where its checkpoint left off (the context counts the
        epochs it reported)."""
        if trainer.current_epoch != self.context.epoch:
            raise ProtocolError(
                f"{self.context.source}: trainable {self.context.name!r} starts Lightning at epoch "
                f"{trainer.current_epoch} but the trial reported {self.context.epoch} epochs; pass "
                "ckpt_path=report.resume_from to trainer.fit (report: its ReportCallback), so a retried or "
                "resumed trial continues from its checkpoint"
            )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start watching this epoch's training losses."""
        self._nonfinite_loss = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Note a non-finite training loss, on the device (no host sync per batch)."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, Tensor):
            bad = ~torch.isfinite(loss.detach()).all()
            self._nonfinite_loss = bad if self._nonfinite_loss is None else self._nonfinite_loss | bad

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One report: the epoch's logged metrics, and its checkpoint."""
        row = self._row(trainer.callback_metrics)
        self._check_finite(row, pl_module)
        state = None
        if self.checkpoint:
            path = self._file()
            trainer.save_checkpoint(path, weights_only=False)  # Lightning's sense: not only the weights
            state = torch.load(path, map_location="cpu", weights_only=True)
        self.context.report(row, checkpoint=state)

    def _row(self, logged: Mapping[str, Any]) -> dict[str, Any]:
        """The metrics to report, by the names they are reported under."""
        scalars = {k: v for k, v in logged.items() if not isinstance(v, Tensor) or v.numel() == 1}
        if self.names is None:
            return dict(scalars)
        missing = sorted(name for name in self.names.values() if name not in scalars)
        if missing:
            raise ProtocolError(
                f"{self.context.source}: trainable {self.context.name!r}: ReportCallback was asked for {missing}, "
                f"which the LightningModule did not log by the end of epoch {self.context.epoch + 1}; it logged "
                f"{sorted(scalars)}"
            )
        return {reported: scalars[name] for reported, name in self.names.items()}

    def _check_finite(self, row: Mapping[str, Any], pl_module: pl.LightningModule) -> None:
        """A non-finite metric: a diverged run, or a metric computed or logged wrongly."""
        bad = {k: float(v) for k, v in row.items() if not math.isfinite(float(v))}
        if not bad:
            return
        epoch = self.context.epoch + 1
        loss_bad = self._nonfinite_loss is not None and bool(self._nonfinite_loss)
        params_bad = not all(torch.isfinite(p).all() for p in pl_module.parameters())
        if loss_bad or params_bad:
            what = "a training loss" if loss_bad else "a parameter"
            raise NonFiniteLoss(
                f"epoch {epoch}: {what} of {self.context.name} became non-finite (it reported {bad}); "
                "lower lr or raise damping"
            )
        raise ProtocolError(
            f"{self.context.source}: trainable {self.context.name!r} logged {bad} at epoch {epoch} while every "
            "training loss of the epoch and every parameter stayed finite: the run did not diverge; the value "
            "comes from how the metric is computed or logged (a mean over an empty set, a metric logged only "
            "in some steps); fix it in the LightningModule"
        )

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remove the checkpoint file written for the context (it keeps its own copy)."""
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
