"""A sweep replayed against a learning-curve table on a simulated clock.

The searcher and scheduler are the objects a real sweep builds from the same sweep file
(`BudgetAwareOptunaSearch` over the file's sampler and space, with its start points and any
warm start; `make_scheduler`'s ASHA), driven as Tune drives them: `max_concurrent` workers, a
new trial asked for whenever one is free, every epoch's result given to the scheduler (which
may stop the trial) and to the searcher, each ended trial told to both. Training is replaced by
the table: a suggested config is answered by a `tuning.replay.lookup.Lookup` (by default the
nearest recorded config, on one of its recorded seeds chosen at random), and each epoch costs
its recorded seconds."""

from __future__ import annotations

import heapq
import math
import random
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from tuning.records.status import DIVERGED_KEY
from tuning.replay.lookup import Lookup, Nearest
from tuning.replay.table import Curve, Table
from tuning.sweep.space import DefineByRun, make_sampler
from tuning.sweep.spec import SweepSpec
from tuning.sweep.tuner import BudgetAwareOptunaSearch, make_scheduler
from tuning.sweep.warm_start import WarmStart, shared_params, tell_warm_start

__all__ = ["Trace", "replay", "warm_from"]


@dataclass
class Trace:
    """What a replayed sweep found over time: `(seconds, config, observed, quality)` each time a
    full-budget trial became the sweep's best (by its observed value, as a sweep chooses);
    `config` is the recorded config the lookup answered from, `quality` the lookup's expected
    final value for the suggestion (the table's seed mean of that config, for `Nearest`).
    `trials` counts the trials started; `complete` holds each full-budget trial's suggested
    params and observed value (what a warm start takes from a finished sweep); `ended[k]` is the
    best observed full-budget value once k + 1 trials had ended (None before the first one)."""

    events: list[tuple[float, int, float, float | None]] = field(default_factory=list)
    trials: int = 0
    complete: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    ended: list[float | None] = field(default_factory=list)

    def quality_at(self, seconds: float) -> float | None:
        """The quality of the sweep's choice at `seconds` (None before a trial finished)."""
        found = [q for t, _, _, q in self.events if t <= seconds]
        return found[-1] if found else None

    def time_to(self, target: float, sign: float) -> float | None:
        """The first time the choice's quality came within `target` (None: never)."""
        for t, _, _, q in self.events:
            if q is not None and sign * q <= sign * target:
                return t
        return None


def _scheduler(spec: SweepSpec) -> TrialScheduler:
    scheduler = make_scheduler(spec)
    if not isinstance(scheduler, (ASHAScheduler, FIFOScheduler)):
        raise ValueError(f"the replay drives ASHA or FIFO, not scheduler.type {spec.scheduler.type!r}")
    return scheduler


def replay(
    spec: SweepSpec,
    table: Table,
    *,
    seed: int,
    seconds: float = math.inf,
    trials: int | None = None,
    warm: WarmStart | None = None,
    lookup: Lookup | None = None,
) -> Trace:
    """Replay `spec`'s search (its sampler seeded with `seed`) against `table` until `seconds`
    of simulated time have passed, or until `trials` trials have ended. `lookup` answers each
    suggested config (default: the nearest recorded one in `spec`'s space)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Define-by-run function passed")  # the sampler's time, not training's
        return _replay(spec, table, seed, seconds, trials, warm, lookup or Nearest(spec.space, table))


def _replay(
    spec: SweepSpec, table: Table, seed: int, seconds: float, trials: int | None, warm: WarmStart | None, lookup: Lookup
) -> Trace:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = spec.model_copy(update={"search": spec.search.model_copy(update={"seed": seed})})
    rng = random.Random(seed)
    np.random.seed(seed)  # ASHA draws a bracket from NumPy's global generator
    storage = optuna.storages.InMemoryStorage()
    if warm is not None and warm.trials:
        tell_warm_start(spec, storage, "replay", warm)
    searcher = BudgetAwareOptunaSearch(
        space=DefineByRun(spec.space),
        metric=spec.metric.name,
        mode=spec.metric.mode,
        sampler=make_sampler(spec),
        storage=storage,
        study_name="replay",
        points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
        budget=spec.budget,
    )
    scheduler = _scheduler(spec)
    metric, budget, sign = spec.metric.name, spec.budget, table.sign
    trace = Trace()
    running: list[tuple[float, int, str]] = []  # (time its next epoch ends, epoch, trial id)
    curves: dict[str, tuple[Curve, SimpleNamespace]] = {}
    answers: dict[str, tuple[dict[str, Any], float | None]] = {}  # trial id: (params, quality)
    best: float | None = None

    def start(now: float) -> None:
        trial_id = f"t{trace.trials}"
        trace.trials += 1
        params = searcher.suggest(trial_id)
        curve, quality = lookup.run(params, rng)
        answers[trial_id] = (params, quality)
        curves[trial_id] = (curve, SimpleNamespace(trial_id=trial_id))
        scheduler.on_trial_add(None, curves[trial_id][1])
        heapq.heappush(running, (now + curve.seconds[0], 1, trial_id))

    for _ in range(min(spec.search.max_concurrent, trials or spec.search.max_concurrent)):
        start(0.0)
    while running:
        now, epoch, trial_id = heapq.heappop(running)
        if now > seconds:
            break
        curve, trial = curves[trial_id]
        value = curve.values[epoch - 1]
        ended_early = epoch == len(curve.values) and curve.diverged
        if value is None:  # a training function's divergence: the trial fails
            scheduler.on_trial_remove(None, trial)
            searcher.on_trial_complete(trial_id, None, error=True)
        else:
            result = {"training_iteration": epoch, "epoch": epoch, metric: value}
            if ended_early:
                result[DIVERGED_KEY] = "recorded"
            action = scheduler.on_trial_result(None, trial, result)
            searcher.on_trial_result(trial_id, result)
            if action == TrialScheduler.CONTINUE and epoch < budget and not ended_early:
                heapq.heappush(running, (now + curve.seconds[epoch], epoch + 1, trial_id))
                continue
            scheduler.on_trial_complete(None, trial, result)
            searcher.on_trial_complete(trial_id, result)
            if epoch >= budget and not ended_early:
                params, quality = answers[trial_id]
                trace.complete.append((params, value))
                if best is None or sign * value < sign * best:
                    best = value
                    trace.events.append((now, curve.config, value, quality))
        trace.ended.append(best)
        if trials is None or trace.trials < trials:
            start(now)
    return trace


def warm_from(trace: Trace, spec: SweepSpec, source: str) -> WarmStart:
    """A finished replayed sweep as the warm start of a sweep of `spec` (as `search.warm_start`
    takes a finished sweep folder: its full-budget trials, mapped onto `spec`'s space)."""
    trials = []
    for k, (suggested, value) in enumerate(trace.complete):
        params = shared_params(spec.space, suggested)
        if params:
            trials.append((f"{source}/{k}", params, value))
    return WarmStart(trials, [{"sweep": source, "used": len(trials), "skipped": len(trace.complete) - len(trials)}])
