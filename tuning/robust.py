"""Re-training configs with fresh seeds at full budget, as Ray tasks: one lucky seed should
not pick the exported config, and comparisons need seed bands."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import ray

from fishleg.config import RunConfig
from tuning.space import apply_params

__all__ = ["SeedRuns", "fresh_seeds", "retrain"]

SEED_OFFSET = 1000  # fresh seeds: never the seed the sweep itself trained with


def fresh_seeds(base_seed: int, count: int) -> list[int]:
    return [base_seed + SEED_OFFSET + i for i in range(count)]


@dataclass
class SeedRuns:
    """One config trained with several seeds; `curves[i]` is seed i's per-epoch metrics."""

    params: dict[str, Any]
    seeds: list[int]
    curves: list[list[dict[str, float]]]

    def finals(self, metric: str) -> list[float]:
        return [c[-1][metric] for c in self.curves]

    def mean(self, metric: str) -> float:
        return statistics.mean(self.finals(metric))

    def std(self, metric: str) -> float:
        values = self.finals(metric)
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def mean_curve(self, key: str) -> list[float]:
        return [statistics.mean(vals) for vals in zip(*[[row[key] for row in c] for c in self.curves])]


def _train(config: dict[str, Any]) -> list[dict[str, float]]:
    from tuning.train import Trainer

    cfg = RunConfig.model_validate(config)
    trainer = Trainer(cfg, source="seed re-run")
    return [trainer.run_epoch() for _ in range(cfg.training.epochs)]


def retrain(
    base: dict[str, Any], params: list[dict[str, Any]], seeds: list[int], cpu: float, gpu: float
) -> list[SeedRuns]:
    """Every (params, seed) pair at the base config's full budget, as concurrent Ray tasks."""
    task = ray.remote(num_cpus=cpu, num_gpus=gpu)(_train)
    refs = []
    for p in params:
        config = apply_params(base, p)
        refs.append([task.remote({**config, "training": {**config["training"], "seed": s}}) for s in seeds])
    return [SeedRuns(p, seeds, ray.get(r)) for p, r in zip(params, refs)]
