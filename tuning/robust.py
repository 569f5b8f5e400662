"""Re-training configs with fresh seeds at full budget, as Ray tasks: one lucky seed should
not pick the exported config, and comparisons need seed bands."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import ray

from tuning.config import RunConfig
from tuning.space import apply_params
from tuning.spec import SweepSpec
from tuning.trials import TrialRecord

__all__ = ["SeedRuns", "fresh_seeds", "retrain", "retrain_trials", "test_seed_runs"]

SEED_OFFSET = 1000  # fresh seeds: never the seed the sweep itself trained with


def fresh_seeds(base_seed: int, count: int) -> list[int]:
    return [base_seed + SEED_OFFSET + i for i in range(count)]


@dataclass
class SeedRuns:
    """One config trained with several seeds; `curves[i]` is seed i's per-epoch validation
    metrics, cut short where that seed diverged (`diverged[i]`; its final value is then NaN).
    `models[i]`: a Ray object ref to seed i's final weights, for the test split once this
    config is chosen (`test`)."""

    params: dict[str, Any]
    seeds: list[int]
    curves: list[list[dict[str, float]]]
    diverged: list[bool]
    models: list[Any] = field(default_factory=list, repr=False)

    def finals(self, metric: str) -> list[float]:
        return [math.nan if bad or not c else c[-1][metric] for c, bad in zip(self.curves, self.diverged)]

    def mean(self, metric: str) -> float:
        return statistics.mean(self.finals(metric))

    def std(self, metric: str) -> float:
        values = self.finals(metric)
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def rank_key(self, metric: str, mode: str) -> float:
        """Smaller is better; a config with a diverged seed ranks last."""
        mean = self.mean(metric)
        return math.inf if math.isnan(mean) else (mean if mode == "min" else -mean)

    def complete_curves(self) -> list[list[dict[str, float]]]:
        return [c for c, bad in zip(self.curves, self.diverged) if not bad]

    def mean_curve(self, key: str) -> list[float]:
        rows = [[row[key] for row in c] for c in self.complete_curves()]
        return [statistics.mean(vals) for vals in zip(*rows)]


def _train(config: dict[str, Any]) -> tuple[tuple[list[dict[str, float]], bool], dict[str, Any] | None]:
    """((per-epoch metrics, diverged), final model weights or None) of one full-budget run;
    a Ray task with two returns, so the weights stay in the object store until tested."""
    from tuning.errors import NonFiniteLoss
    from tuning.train import Trainer

    cfg = RunConfig.model_validate(config)
    trainer = Trainer(cfg, source="seed re-run")
    try:
        while trainer.epoch < cfg.training.epochs:
            trainer.run_epoch()
    except NonFiniteLoss:
        return (trainer.history, True), None
    return (trainer.history, False), {k: v.cpu() for k, v in trainer.model.state_dict().items()}


def _seed_config(base: dict[str, Any], params: dict[str, Any], seed: int) -> dict[str, Any]:
    config = apply_params(base, params)
    return {**config, "training": {**config["training"], "seed": seed}}


def retrain(
    base: dict[str, Any], params: list[dict[str, Any]], seeds: list[int], cpu: float, gpu: float
) -> list[SeedRuns]:
    """Every (params, seed) pair at the base config's full budget, as concurrent Ray tasks."""
    task = ray.remote(num_cpus=cpu, num_gpus=gpu, num_returns=2)(_train)
    refs = [[task.remote(_seed_config(base, p, s)) for s in seeds] for p in params]
    out = []
    for p, pairs in zip(params, refs):
        runs = ray.get([curve for curve, _ in pairs])
        out.append(SeedRuns(p, seeds, [c for c, _ in runs], [d for _, d in runs], [m for _, m in pairs]))
    return out


def test_seed_runs(base: dict[str, Any], runs: SeedRuns, cpu: float, gpu: float) -> dict[str, Any]:
    """The test split, once, for a chosen config's seeds that did not diverge: mean, std and
    per-seed values of each test metric (see `holdout.summarize`)."""
    from tuning.holdout import summarize, test_states

    ok = [i for i, bad in enumerate(runs.diverged) if not bad]
    configs = [_seed_config(base, runs.params, runs.seeds[i]) for i in ok]
    return summarize(test_states(configs, [runs.models[i] for i in ok], cpu, gpu))


def retrain_trials(spec: SweepSpec, trials: list[TrialRecord], seeds: int) -> list[SeedRuns]:
    """Each trial's config re-trained at `spec`'s full budget with `seeds` fresh seeds."""
    return retrain(
        spec.base_config(),
        [t.params for t in trials],
        fresh_seeds(spec.training.seed, seeds),
        spec.resources.cpu,
        spec.resources.gpu,
    )
