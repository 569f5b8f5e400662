"""Re-training configs with fresh seeds at full budget, as Ray tasks: one lucky seed should
not pick the exported config, and comparisons need seed bands."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import ray

from fishleg.config import RunConfig
from tuning.space import apply_params
from tuning.spec import SweepSpec
from tuning.trials import TrialRecord

__all__ = ["SeedRuns", "fresh_seeds", "retrain", "retrain_trials"]

SEED_OFFSET = 1000  # fresh seeds: never the seed the sweep itself trained with


def fresh_seeds(base_seed: int, count: int) -> list[int]:
    return [base_seed + SEED_OFFSET + i for i in range(count)]


@dataclass
class SeedRuns:
    """One config trained with several seeds; `curves[i]` is seed i's per-epoch metrics, cut
    short where that seed diverged (`diverged[i]`; its final value is then NaN)."""

    params: dict[str, Any]
    seeds: list[int]
    curves: list[list[dict[str, float]]]
    diverged: list[bool]

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


def _train(config: dict[str, Any]) -> tuple[list[dict[str, float]], bool]:
    """(per-epoch metrics, diverged) of one full-budget run."""
    from tuning.errors import NonFiniteLoss
    from tuning.train import Trainer

    cfg = RunConfig.model_validate(config)
    trainer = Trainer(cfg, source="seed re-run")
    try:
        while trainer.epoch < cfg.training.epochs:
            trainer.run_epoch()
    except NonFiniteLoss:
        return trainer.history, True
    return trainer.history, False


def retrain(
    base: dict[str, Any], params: list[dict[str, Any]], seeds: list[int], cpu: float, gpu: float
) -> list[SeedRuns]:
    """Every (params, seed) pair at the base config's full budget, as concurrent Ray tasks."""
    task = ray.remote(num_cpus=cpu, num_gpus=gpu)(_train)
    refs = []
    for p in params:
        config = apply_params(base, p)
        refs.append([task.remote({**config, "training": {**config["training"], "seed": s}}) for s in seeds])
    results = [ray.get(r) for r in refs]
    return [SeedRuns(p, seeds, [c for c, _ in runs], [d for _, d in runs]) for p, runs in zip(params, results)]


def retrain_trials(spec: SweepSpec, trials: list[TrialRecord], seeds: int) -> list[SeedRuns]:
    """Each trial's config re-trained at `spec`'s full budget with `seeds` fresh seeds."""
    return retrain(
        spec.base_config(),
        [t.params for t in trials],
        fresh_seeds(spec.training.seed, seeds),
        spec.resources.cpu,
        spec.resources.gpu,
    )
