"""The test split, evaluated once, for what a sweep chose on validation.

Trials and seed re-runs only ever see train and validation data. After the choice is made,
the chosen trial's final checkpoint (or each chosen seed re-run's final weights) is
evaluated on the test split in a Ray task with the trial's resources, on whichever node can
hold it; nothing else reads the test split."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import ray
from ray import tune

from tuning.config import RunConfig
from tuning.train import Trainer, load_checkpoint

__all__ = ["summarize", "test_checkpoint", "test_states"]

SOURCE = "test of the chosen config"


def _test_checkpoint(config: dict[str, Any], checkpoint: tune.Checkpoint, filename: str) -> dict[str, float]:
    trainer = Trainer(RunConfig.model_validate(config), source=SOURCE)
    with checkpoint.as_directory() as folder:
        load_checkpoint(trainer, Path(folder) / filename)
    return {"epoch": trainer.epoch, **trainer.test()}


def _test_state(config: dict[str, Any], model_state: dict[str, Any]) -> dict[str, float]:
    trainer = Trainer(RunConfig.model_validate(config), source=SOURCE)
    trainer.model.load_state_dict(model_state)
    return trainer.test()


def test_checkpoint(
    config: dict[str, Any], checkpoint: tune.Checkpoint, filename: str, cpu: float, gpu: float
) -> dict[str, float]:
    """Test metrics (and the epoch it had reached) of a trial's checkpoint."""
    task = ray.remote(num_cpus=cpu, num_gpus=gpu)(_test_checkpoint)
    return ray.get(task.remote(config, checkpoint, filename))


def test_states(configs: list[dict[str, Any]], states: list[Any], cpu: float, gpu: float) -> list[dict[str, float]]:
    """Test metrics of trained weights (Ray object refs of model state dicts), one per config."""
    task = ray.remote(num_cpus=cpu, num_gpus=gpu)(_test_state)
    return ray.get([task.remote(c, s) for c, s in zip(configs, states)])


def summarize(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """{'test_loss': mean, 'test_loss_std': std, 'test_loss_finals': [...]} over seeds."""
    out: dict[str, Any] = {}
    for key in per_seed[0] if per_seed else []:
        values = [m[key] for m in per_seed]
        out[key] = statistics.mean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[f"{key}_finals"] = values
    return out
