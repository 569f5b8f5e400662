"""Re-training configs with fresh seeds at full budget, as Ray tasks: one lucky seed should
not pick the exported config (`robust_best`, for `--robust-top`), and comparisons need seed
bands (`compare`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from tuning.errors import NonFiniteLoss
from tuning.records.ledger import Best, TrialRecord, rank_trials
from tuning.run.config import RunConfig
from tuning.run.fit import LocalContext
from tuning.selection.seed_store import SeedStore
from tuning.sweep.spec import SweepSpec, apply_params
from tuning.training import WorkloadFit, fit_for

__all__ = [
    "RobustChoice",
    "SeedRuns",
    "best_of",
    "fresh_seeds",
    "retrain",
    "retrain_for",
    "retrain_top",
    "retrain_trials",
    "robust_best",
    "seed_config",
]

SOURCE = "seed re-run"
SEED_OFFSET = 1000  # fresh seeds: never the seed the sweep itself trained with


def fresh_seeds(base_seed: int, count: int) -> list[int]:
    """`count` seeds no sweep trial trained with."""
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
        """Each seed's final `metric` (NaN where it diverged)."""
        return [math.nan if bad or not c else c[-1][metric] for c, bad in zip(self.curves, self.diverged)]

    def mean(self, metric: str) -> float:
        """Mean final `metric` over seeds (NaN if any seed diverged)."""
        return statistics.mean(self.finals(metric))

    def std(self, metric: str) -> float:
        """Sample standard deviation of the final `metric` over seeds (0 for one seed; NaN if
        any seed diverged, as `mean`: statistics.stdev raises on a NaN instead)."""
        values = self.finals(metric)
        if any(math.isnan(v) for v in values):
            return math.nan
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def rank_key(self, metric: str, mode: str) -> float:
        """Smaller is better; a config with a diverged seed ranks last."""
        mean = self.mean(metric)
        return math.inf if math.isnan(mean) else (mean if mode == "min" else -mean)

    def complete_curves(self) -> list[list[dict[str, float]]]:
        """The curves of the seeds that did not diverge."""
        return [c for c, bad in zip(self.curves, self.diverged) if not bad]

    def mean_curve(self, key: str) -> list[float]:
        """Per-epoch mean of `key` over the seeds that did not diverge."""
        rows = [[row[key] for row in c] for c in self.complete_curves()]
        return [statistics.mean(vals) for vals in zip(*rows)]


def _train(config: dict[str, Any]) -> tuple[tuple[list[dict[str, float]], bool], dict[str, Any] | None]:
    """((per-epoch metrics, diverged), final model weights or None) of one full-budget run;
    a Ray task with two returns, so the weights stay in the object store until tested (a
    workload's; a training function's test split is its own, so it returns None)."""
    cfg = RunConfig.model_validate(config)
    fit = fit_for(cfg, SOURCE)
    context = LocalContext(cfg, source=SOURCE)
    try:
        fit(cfg, context)
    except NonFiniteLoss:
        return (context.history, True), None
    if not isinstance(fit, WorkloadFit) or fit.trainer is None:
        return (context.history, False), None
    return (context.history, False), {k: v.cpu() for k, v in fit.trainer.model.state_dict().items()}


def seed_config(base: dict[str, Any], params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The base run config with the sampled params and training seed `seed`."""
    config = apply_params(base, params)
    return {**config, "training": {**config["training"], "seed": seed}}


def retrain(
    base: dict[str, Any],
    params: list[dict[str, Any]],
    seeds: list[int],
    cpu: float,
    gpu: float,
    store: SeedStore,
) -> list[SeedRuns]:
    """Every (params, seed) pair at the base config's full budget, as concurrent Ray tasks; a
    pair `store` already holds is read back, and each one trained is filed there as it ends."""
    task = ray.remote(num_cpus=cpu, num_gpus=gpu, num_returns=2)(_train)
    configs = {(i, j): seed_config(base, p, s) for i, p in enumerate(params) for j, s in enumerate(seeds)}
    runs: dict[tuple[int, int], tuple[list[dict[str, float]], bool, Any]] = {}
    pending = {}
    for pair, config in configs.items():
        kept = store.get(config)
        if kept is not None:
            curve, diverged, weights = kept
            runs[pair] = (curve, diverged, ray.put(weights))
        else:
            curve_ref, model_ref = task.remote(config)
            pending[curve_ref] = (pair, model_ref)
    while pending:
        (done,), _ = ray.wait(list(pending), num_returns=1)
        pair, model_ref = pending.pop(done)
        curve, diverged = ray.get(done)
        store.put(configs[pair], (curve, diverged, ray.get(model_ref)))
        runs[pair] = (curve, diverged, model_ref)
    out = []
    for i, p in enumerate(params):
        row = [runs[i, j] for j in range(len(seeds))]
        out.append(SeedRuns(p, seeds, [c for c, _, _ in row], [d for _, d, _ in row], [m for _, _, m in row]))
    return out


def retrain_for(spec: SweepSpec, params: list[dict[str, Any]], seeds: list[int], store: SeedStore) -> list[SeedRuns]:
    """`retrain` on `spec`'s base config, with its trials' resources."""
    return retrain(spec.base_config(), params, seeds, spec.resources.cpu, spec.resources.gpu, store)


def retrain_trials(spec: SweepSpec, trials: list[TrialRecord], seeds: int, store: SeedStore) -> list[SeedRuns]:
    """Each trial's config re-trained at `spec`'s full budget with `seeds` fresh seeds."""
    return retrain_for(spec, [t.params for t in trials], fresh_seeds(spec.training.seed, seeds), store)


def retrain_top(
    spec: SweepSpec,
    records: list[TrialRecord],
    top: int,
    seeds: int,
    echo: Callable[[str], None],
    store: SeedStore,
    label: str = "",
) -> list[tuple[TrialRecord, SeedRuns]]:
    """The `top` best trials that ran `spec`'s full budget (by the sweep's metric), each with
    its config re-trained with `seeds` fresh seeds; [] if no trial ran the full budget."""
    ranked = rank_trials(records, spec.metric.name, spec.metric.mode, min_epochs=spec.budget)[:top]
    if not ranked:
        return []
    echo(f"re-training the top {len(ranked)} {label + ' ' if label else ''}trials with {seeds} fresh seeds each")
    return list(zip(ranked, retrain_trials(spec, ranked, seeds, store)))


def best_of(runs: list[SeedRuns], metric: str, mode: str) -> int:
    """The index of the runs with the best mean final `metric` (a diverged seed ranks last)."""
    return min(range(len(runs)), key=lambda i: runs[i].rank_key(metric, mode))


@dataclass
class RobustChoice:
    """The trial whose config had the best validation mean over fresh seeds (`best`), its
    seed re-runs, and the provenance they add to the export (`info`)."""

    best: Best
    runs: SeedRuns
    info: dict[str, Any]


def robust_best(candidates: list[tuple[TrialRecord, SeedRuns]], metric: str, mode: str) -> RobustChoice | None:
    """The candidate (a trial and its config's fresh-seed runs, from `retrain_top`) with the
    best validation mean (a config with a diverged seed ranks last); None without candidates."""
    if not candidates:
        return None
    trial, chosen = candidates[best_of([runs for _, runs in candidates], metric, mode)]
    info = {
        "seeds": chosen.seeds,
        "finals": chosen.finals(metric),
        "mean": chosen.mean(metric),
        "std": chosen.std(metric),
        "candidates": [{"trial_id": r.trial_id, "mean": s.mean(metric), "std": s.std(metric)} for r, s in candidates],
    }
    return RobustChoice(Best(trial, chosen.mean(metric), True), chosen, info)
