"""The Ray Tune function trainable: one trial = one `Trainer` run of one sampled config.

It reports validation metrics each epoch with `ray.tune.report`, saving a checkpoint with
every report, and restores from `ray.tune.get_checkpoint()` when Tune retries or resumes it
(`started_at_epoch` in its results says from which epoch this attempt ran, 0 if fresh)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from fishleg.config import RunConfig
from tuning.space import apply_params
from tuning.train import Trainer, load_checkpoint, save_checkpoint

__all__ = ["CHECKPOINT_FILE", "run_trial"]

CHECKPOINT_FILE = "trainer.pt"


def run_trial(params: dict[str, Any], base: dict[str, Any]) -> None:
    config = RunConfig.model_validate(apply_params(base, params))
    trainer = Trainer(config, source="sweep trial")
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            load_checkpoint(trainer, Path(folder) / CHECKPOINT_FILE)
    node_id = ray.get_runtime_context().get_node_id()
    started_at = trainer.epoch
    while trainer.epoch < config.training.epochs:
        metrics: dict[str, Any] = dict(trainer.run_epoch())
        metrics["node_id"] = node_id
        metrics["started_at_epoch"] = started_at
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(trainer, Path(folder) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
