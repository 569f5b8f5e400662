"""Build a learning-curve table from a sweep file: its `points_to_evaluate` first, then configs
drawn at random from its `space:` (Optuna's RandomSampler over the same define-by-run function
a sweep samples through), each trained to the full budget in this process on each seed.

Seed-major (every config on the first seed, then the second, ...), appending each finished run,
so a build stopped part-way is a smaller table, and the same command continues it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from tuning.errors import NonFiniteLoss
from tuning.replay.table import Curve, append_curve, load_table, start_table
from tuning.run.config import RunConfig
from tuning.run.fit import LocalContext
from tuning.sweep.space import DefineByRun
from tuning.sweep.spec import Scalar, SweepSpec
from tuning.sweep.trainable import diverged_report
from tuning.training import fit_for

__all__ = ["build_table", "draw_configs", "run_curve"]


def draw_configs(spec: SweepSpec, count: int, seed: int) -> list[dict[str, Scalar]]:
    """`count` configs: the file's points_to_evaluate, then random draws from its space."""
    points = [dict(p) for p in spec.search.points_to_evaluate][:count]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    define = DefineByRun(spec.space)
    while len(points) < count:
        trial = study.ask()
        define(trial)
        points.append(dict(trial.params))
        study.tell(trial, 0.0)
    return points


def run_curve(config: RunConfig, metric: str, index: int) -> Curve:
    """Train one config to its budget; a divergence ends the curve as a sweep ends the trial."""
    context = LocalContext(config, source="table")
    started = time.perf_counter()
    ended: tuple[float | None, float] | None = None  # a divergence: (its value, its epoch's seconds)
    try:
        fit_for(config, "table")(config, context)
    except NonFiniteLoss as exc:
        last = diverged_report(config, context.epoch + 1, str(exc))[metric] if config.workload is not None else None
        ended = (last, time.perf_counter() - started - sum(r["epoch_time_s"] for r in context.history))
    values = [r[metric] for r in context.history]
    seconds = [r["epoch_time_s"] for r in context.history]
    if ended is not None:
        values.append(ended[0])
        seconds.append(ended[1])
    return Curve(index, config.training.seed, tuple(values), tuple(seconds), diverged=ended is not None)


def _best_first(path: Path, seed: int, mode: str) -> list[int]:
    """Configs by their finished run on `seed`, best first."""
    table = load_table(path)
    finished = {c.config: c.final for i in table.curves for c in table.full(i) if c.seed == seed}
    return sorted(finished, key=lambda i: finished[i] if mode == "min" else -finished[i])


def build_table(
    spec: SweepSpec,
    path: Path,
    *,
    configs: int,
    seeds: int,
    top: int | None = None,
    draw_seed: int = 0,
    source: str = "sweep file",
    overrides: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> None:
    """Record `configs` configs × `seeds` training seeds (the file's seed, +1, ...) into `path`,
    skipping runs it already holds. `source` and `overrides` (as given on the command line) say
    in the table what it was built from. With `top`, seeds after the first train only the `top` best
    configs of the first (the seed noise that matters is the best configs')."""
    points = draw_configs(spec, configs, draw_seed)
    keys = list(spec.space)
    meta: dict[str, Any] = {
        "sweep": spec.name,
        "source": source,
        "overrides": list(overrides),
        "metric": spec.metric.name,
        "mode": spec.metric.mode,
        "budget": spec.training.epochs,
        "draw_seed": draw_seed,
    }
    start_table(path, meta, keys)
    done = load_table(path).done()
    first = spec.training.seed
    for s in range(seeds):
        chosen = range(len(points)) if s == 0 or top is None else _best_first(path, first, spec.metric.mode)[:top]
        for index in sorted(chosen):
            seed, params = first + s, points[index]
            if (index, seed) in done:
                continue
            config = spec.config_for(params)
            config = config.model_copy(update={"training": config.training.model_copy(update={"seed": seed})})
            curve = run_curve(config, spec.metric.name, index)
            append_curve(path, curve, params)
            ran = f"after {len(curve.values)} epochs, {sum(curve.seconds):.1f} s"
            echo(f"config {index} seed {seed}: {spec.metric.name} {curve.final} {ran}")
