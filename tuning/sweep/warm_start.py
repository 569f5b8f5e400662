"""Warm starts (`search.warm_start: [SWEEP_FOLDER, ...]`): the finished trials of earlier
sweeps of the same workload and metric, told to the sampler before the first new trial.

Each earlier trial that ran the full budget and did not diverge becomes a COMPLETE trial of the
new study (Optuna user attribute `warm_start`: where it came from), with its validation value and
the parameters the new space shares with it: keys the new space lacks are dropped, a trial with a
shared value outside the new space is skipped, and a conditional parameter whose `when:` the
trial does not meet is dropped. An AdamW sweep feeding a grafted FishLeg sweep so shares `lr` and
`weight_decay` (with grafting, FishLeg's lr lives on AdamW's scale). They are told once, before the
first new trial; `resume` finds them in the study and tells them again never.

Told trials alone move nothing at first: a sampler draws its first trials at random until it has
enough of them (TPE: 10), and a few full-budget trials are all an ASHA sweep leaves. So the best
earlier trial is also the new sweep's first: its shared values on the file's first
`points_to_evaluate` (the known recipe) when it has one, the other keys sampled when not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from tuning.errors import ConfigError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger
from tuning.records.lock import holder
from tuning.records.status import Status
from tuning.sweep.space import distribution
from tuning.sweep.spec import ParamSpec, SweepSpec, load_sweep

__all__ = [
    "WARM_ATTR",
    "WarmStart",
    "check_warm_start",
    "own_trials",
    "shared_params",
    "tell_warm_start",
    "warm_start",
]

WARM_ATTR = "warm_start"  # a study trial's user attribute: the earlier sweep and trial it came from


@dataclass(frozen=True)
class WarmStart:
    """The earlier trials a sweep starts from (`trials`: (source, params, value)) and, per
    earlier sweep, how many of its finished trials were used and skipped."""

    trials: list[tuple[str, dict[str, Any], float]]
    sources: list[dict[str, Any]]

    def first_point(self, spec: SweepSpec) -> dict[str, Any] | None:
        """The new sweep's first trial: the best earlier trial's shared values, on the file's first
        start point if it has one (None without earlier trials)."""
        if not self.trials:
            return None
        sign = 1.0 if spec.metric.mode == "min" else -1.0
        _, params, _ = min(self.trials, key=lambda t: sign * t[2])
        start = dict(spec.search.points_to_evaluate[0]) if spec.search.points_to_evaluate else {}
        return {**start, **params}

    def describe(self) -> str:
        """For the plan: '12 trials from fishleg-runs/quickstart_adamw (3 skipped: outside this space)'."""
        parts = []
        for s in self.sources:
            skipped = f" ({s['skipped']} outside this space, skipped)" if s["skipped"] else ""
            parts.append(f"{s['used']} trials from {s['sweep']}{skipped}")
        return "; ".join(parts)


def check_warm_start(spec: SweepSpec, source: str) -> list[SweepFolder]:
    """The earlier sweeps `search.warm_start` names, each refused with one paragraph unless it
    is a sweep of the same workload (or training function), budget and metric that is not
    running now."""
    folders = []
    for i, name in enumerate(spec.search.warm_start):
        where = f"{source}: search.warm_start[{i}]: {name}"
        folder = SweepFolder.at(Path(name))
        if not folder.is_sweep():
            raise ConfigError(
                f"{where}: no sweep there (no {SweepFolder.META}); give the STORAGE/NAME folder of a finished sweep "
                "(relative paths are read from the folder the command runs in)."
            )
        running = holder(folder.path)
        if running is not None:
            raise ConfigError(f"{where}: that sweep is running now ({running}); warm-start from it once it ends.")
        earlier = load_sweep(folder.spec_file)
        checks = {
            "workload": (earlier.workload, spec.workload),
            "trainable": (earlier.trainable, spec.trainable),
            "training.epochs": (earlier.training.epochs, spec.training.epochs),
            "metric": (earlier.metric, spec.metric),
        }
        for key, (theirs, ours) in checks.items():
            if theirs != ours:
                raise ConfigError(
                    f"{where}: that sweep's {key} is {theirs}, this one's {ours}; a warm start needs earlier trials "
                    "of the same workload (or training function), budget and metric."
                )
        folders.append(folder)
    return folders


def shared_params(space: dict[str, ParamSpec], params: dict[str, Any]) -> dict[str, Any] | None:
    """The params the space shares, in its order, conditionals whose `when:` is unmet dropped;
    None when a shared value lies outside the space."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if name not in params:
            continue
        if p.when and not all(out.get(ref) in (w if isinstance(w, list) else [w]) for ref, w in p.when.items()):
            continue
        if not p.admits(params[name]):
            return None
        out[name] = params[name]
    return out


def warm_start(spec: SweepSpec, folders: list[SweepFolder]) -> WarmStart:
    """The finished, full-budget trials of `folders`, mapped onto `spec`'s space."""
    metric = spec.metric.name
    trials, sources = [], []
    for folder in folders:
        used = skipped = 0
        for record in Ledger(folder.ledger_file).records.values():
            value = record.value(metric)
            if record.status != Status.COMPLETE or record.epochs < spec.budget or value is None:
                continue
            params = shared_params(spec.space, record.params)
            if not params:
                skipped += 1
                continue
            trials.append((f"{folder.path}/{record.trial_id}", params, float(value)))
            used += 1
        sources.append({"sweep": str(folder.path), "used": used, "skipped": skipped})
    return WarmStart(trials, sources)


def tell_warm_start(
    spec: SweepSpec, storage: str | optuna.storages.BaseStorage, study_name: str, warm: WarmStart
) -> None:
    """Add the warm trials to the sweep's study (created here as Tune's searcher will load
    it), and the best one's values as its first trial, unless it has them already (a resumed
    sweep)."""
    direction = "minimize" if spec.metric.mode == "min" else "maximize"
    study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, load_if_exists=True)
    if any(WARM_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False)):
        return
    for source, params, value in warm.trials:
        distributions = {name: distribution(spec.space[name]) for name in params}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions, value=value, user_attrs={WARM_ATTR: source}
            )
        )
    first = warm.first_point(spec)
    if first is not None:
        study.enqueue_trial(first)


def own_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that this sweep ran (not those told from earlier sweeps)."""
    return [t for t in study.get_trials(deepcopy=False) if WARM_ATTR not in t.user_attrs]
