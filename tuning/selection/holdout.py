"""The test split, evaluated once, for what a sweep chose on validation.

Trials and seed re-runs only ever see train and validation data. After the choice is made,
the chosen trial's final checkpoint (or each chosen seed re-run's final weights) is
evaluated on the test split: on a cluster, in a Ray task with the trial's resources on
whichever node can hold it; on a Ray of this machine alone, in the driver's own process (the
same hardware, without a worker's start and imports). Nothing else reads the test split."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from tuning.records.folder import SweepFolder
from tuning.records.ledger import Best
from tuning.run.config import RunConfig, load_run_config
from tuning.selection.robust import SeedRuns, seed_config
from tuning.sweep.retention import kept_checkpoint
from tuning.sweep.spec import SweepSpec
from tuning.sweep.trainable import restore
from tuning.training import Trainer

__all__ = ["evaluate_checkpoint", "evaluate_chosen", "evaluate_seed_runs", "evaluate_states", "summarize"]

SOURCE = "test of the chosen config"


def _evaluate_checkpoint(config: RunConfig, checkpoint: tune.Checkpoint) -> dict[str, float]:
    trainer = Trainer(config, source=SOURCE)
    trainer.load_state_dict(restore(checkpoint, trainer.device).state)
    return {"epoch": trainer.epoch, **trainer.test()}


def _evaluate_state(config: dict[str, Any], model_state: dict[str, Any]) -> dict[str, float]:
    trainer = Trainer(RunConfig.model_validate(config), source=SOURCE)
    trainer.model.load_state_dict(model_state)
    return trainer.test()


def _this_machine_only() -> bool:
    """Whether every live node of the Ray cluster is the driver's own."""
    here = ray.get_runtime_context().get_node_id()
    return all(node["NodeID"] == here for node in ray.nodes() if node["Alive"])


def evaluate_checkpoint(config: RunConfig, checkpoint: tune.Checkpoint, cpu: float, gpu: float) -> dict[str, float]:
    """Test metrics (and the epoch it had reached) of a trial's checkpoint."""
    if _this_machine_only():
        return _evaluate_checkpoint(config, checkpoint)
    task = ray.remote(num_cpus=cpu, num_gpus=gpu)(_evaluate_checkpoint)
    return ray.get(task.remote(config, checkpoint))


def evaluate_states(configs: list[dict[str, Any]], states: list[Any], cpu: float, gpu: float) -> list[dict[str, float]]:
    """Test metrics of trained weights (Ray object refs of model state dicts), one per config."""
    if _this_machine_only():
        return [_evaluate_state(c, ray.get(s)) for c, s in zip(configs, states, strict=True)]
    task = ray.remote(num_cpus=cpu, num_gpus=gpu)(_evaluate_state)
    return ray.get([task.remote(c, s) for c, s in zip(configs, states, strict=True)])


def summarize(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """{'test_loss': mean, 'test_loss_std': std, 'test_loss_finals': [...]} over seeds."""
    out: dict[str, Any] = {}
    for key in per_seed[0] if per_seed else []:
        values = [m[key] for m in per_seed]
        out[key] = statistics.mean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[f"{key}_finals"] = values
    return out


def evaluate_seed_runs(base: dict[str, Any], runs: SeedRuns, cpu: float, gpu: float) -> dict[str, Any]:
    """The test split, once, for a chosen config's seeds that did not diverge: mean, std and
    per-seed values of each test metric (see `summarize`)."""
    ok = [i for i, bad in enumerate(runs.diverged) if not bad]
    configs = [seed_config(base, runs.params, runs.seeds[i]) for i in ok]
    return summarize(evaluate_states(configs, [runs.models[i] for i in ok], cpu, gpu))


def evaluate_chosen(
    spec: SweepSpec,
    folder: SweepFolder,
    best: Best,
    chosen: RunConfig,
    seed_runs: SeedRuns | None,
    echo: Callable[[str], None],
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """(test metrics, what they add to the provenance) of the chosen config (`chosen`: the best
    trial's run config), evaluated once:
    on the chosen seed re-runs' weights, else on the chosen trial's final checkpoint (a
    workload's; a training function tests itself, once, for the config it is given). A resumed
    sweep that exports the same trial again reuses the test it already has."""
    if spec.workload is None:
        return None, {"test_on": "not evaluated: a training function's test split is its own"}
    previous = load_run_config(folder.best_file).provenance if folder.best_file.exists() else None
    if previous and previous.get("trial_id") == best.record.trial_id and previous.get("test"):
        return previous["test"], {k: previous[k] for k in ("test_on", "test_seed_runs") if k in previous}
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    if seed_runs is not None:
        echo(f"evaluating the chosen config's {len(seed_runs.seeds)} seed re-runs on the test split (once)")
        summary = evaluate_seed_runs(spec.base_config(), seed_runs, cpu, gpu)
        means = {k: v for k, v in summary.items() if not k.endswith(("_std", "_finals"))}
        return means or None, {"test_on": "seed re-runs (mean)", "test_seed_runs": summary}
    checkpoint = kept_checkpoint(folder, best.record)
    if checkpoint is None:
        return None, {"test_on": "not evaluated: the chosen trial's final checkpoint is not available"}
    echo(f"evaluating trial {best.record.trial_id}'s final checkpoint on the test split (once)")
    metrics = evaluate_checkpoint(chosen, checkpoint, cpu, gpu)
    epoch = metrics.pop("epoch")
    if epoch != best.record.epochs:
        return None, {"test_on": f"not evaluated: the last checkpoint is of epoch {epoch}, not {best.record.epochs}"}
    return metrics, {"test_on": f"trial {best.record.trial_id}'s final checkpoint (epoch {epoch})"}
