"""The Ray Tune function trainable: one trial = one `Trainer` run of one sampled config.

It reports validation metrics each epoch with `ray.tune.report`, saving a checkpoint with
every report, and restores from `ray.tune.get_checkpoint()` when Tune retries or resumes it
(`started_at_epoch` in its results says from which epoch this attempt ran, 0 if fresh).
On `resume`, a trial the ledger saw end in the controller step a killed driver never saved
replays its recorded last result instead of training again (see `tuning.reconcile`).
A run that diverges ends cleanly with one last report (see `diverged_report`), so Tune does
not retry it and the sampler learns from it. The test split is never touched here."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from tuning.config import RunConfig
from tuning.errors import NonFiniteLoss
from tuning.space import apply_params
from tuning.train import Trainer, load_checkpoint, save_checkpoint

__all__ = ["CHECKPOINT_FILE", "DIVERGED", "Ended", "diverged_report", "restore", "run_trial"]

CHECKPOINT_FILE = "trainer.pt"
DIVERGED = "diverged"  # the key of a diverged trial's last result: the reason, as text


def diverged_report(config: RunConfig, epoch: int, reason: str) -> dict[str, Any]:
    """The last result of a trial that diverged in `epoch`: the metrics of the same model
    untrained (same seed, so the same initial weights), flagged with `DIVERGED`.

    Why a value, and this one: Optuna's GP and CMA-ES samplers learn only from COMPLETE trials
    (TPE also from PRUNED), so a diverged trial is told COMPLETE with a value; a diverged run
    is worth no more than not training at all, and the untrained model's metrics are a finite,
    workload-scaled worst case that keeps a GP's standardisation sane (unlike inf or 1e30).
    `train_loss` gets the untrained validation loss (the same distribution)."""
    untrained = Trainer(config, source="sweep trial").evaluate()
    return {"epoch": epoch, "train_loss": untrained["val_loss"], **untrained, DIVERGED: reason}


@dataclass(frozen=True)
class Ended:
    """How a trial ended, as the ledger recorded it: its last result (for a diverged trial,
    its epoch and `DIVERGED` reason only) and the path or URI of its last checkpoint."""

    result: dict[str, Any]
    checkpoint: str | None = None


def restore(trainer: Trainer, checkpoint: tune.Checkpoint) -> None:
    """Load a trial's Tune checkpoint (local or in cloud storage) into `trainer`."""
    with checkpoint.as_directory() as folder:
        load_checkpoint(trainer, Path(folder) / CHECKPOINT_FILE)


def replay(config: RunConfig, ended: Ended) -> None:
    """Report a trial's recorded last result again, with a copy of its last checkpoint (Tune
    persists it under its own next name, which may be the original's)."""
    if DIVERGED in ended.result:
        tune.report(diverged_report(config, ended.result["epoch"], ended.result[DIVERGED]))
        return
    if ended.checkpoint is None:
        tune.report(ended.result)
        return
    with tempfile.TemporaryDirectory() as folder:
        tune.Checkpoint(ended.checkpoint).to_directory(folder)
        tune.report(ended.result, checkpoint=tune.Checkpoint.from_directory(folder))


def run_trial(params: dict[str, Any], base: dict[str, Any], ended: dict[str, Ended] | None = None) -> None:
    """Train one sampled config to its budget, reporting every epoch (Tune's function API).

    `ended`: the trials that ended before the driver was killed (`reconcile.ended_results`);
    such a trial replays its end, unless Tune's restored state has it already."""
    config = RunConfig.model_validate(apply_params(base, params))
    trainer = Trainer(config, source="sweep trial")
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        restore(trainer, checkpoint)
    last = (ended or {}).get(tune.get_context().get_trial_id())
    if last is not None:
        if trainer.epoch < last.result["epoch"]:
            replay(config, last)
        return
    context = {"node_id": ray.get_runtime_context().get_node_id(), "started_at_epoch": trainer.epoch}
    while trainer.epoch < config.training.epochs:
        try:
            metrics: dict[str, Any] = dict(trainer.run_epoch())
        except NonFiniteLoss as exc:
            tune.report({**diverged_report(config, trainer.epoch + 1, str(exc)), **context})
            return
        metrics.update(context)
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(trainer, Path(folder) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
