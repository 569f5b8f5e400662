"""Sweep `space:` → an Optuna define-by-run function and sampler; sampled params → run config."""

from __future__ import annotations

import math
from typing import Any

import optuna
from pydantic import ValidationError
from typing_extensions import override

from tuning.errors import ConfigError
from tuning.run.config import RunConfig, describe_error
from tuning.run.overrides import close_key, settable_keys
from tuning.sweep.spec import ParamSpec, Scalar, SweepSpec, apply_params

__all__ = ["DefineByRun", "distribution", "make_sampler", "validate_space"]


class DefineByRun:
    """Suggests each parameter in file order, skipping those whose `when:` is not met.
    A class, not a closure, so Ray can pickle the searcher that holds it."""

    def __init__(self, space: dict[str, ParamSpec]) -> None:
        self.space = space

    @override
    def __call__(self, trial: optuna.Trial) -> None:
        chosen: dict[str, Any] = {}
        for name, p in self.space.items():
            if p.when and not all(_matches(chosen.get(ref), want) for ref, want in p.when.items()):
                continue
            chosen[name] = suggest(trial, name, p)


def _matches(value: Any, want: Any) -> bool:
    return value in want if isinstance(want, list) else value == want


def suggest(trial: optuna.Trial, name: str, p: ParamSpec) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, p.choices)
    if p.type == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)


def distribution(p: ParamSpec) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution `suggest` samples `p` from (for trials told rather than sampled)."""
    if p.type == "categorical":
        return optuna.distributions.CategoricalDistribution(p.choices)
    if p.type == "int":
        return optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
    return optuna.distributions.FloatDistribution(p.low, p.high, log=p.log, step=p.step)


def make_sampler(spec: SweepSpec, source: str = "sweep file") -> optuna.samplers.BaseSampler:
    """The Optuna sampler the sweep file names, seeded; the grid sampler gets every grid point."""
    s = spec.search
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed, multivariate=True, group=True, constant_liar=True)
    if s.sampler == "gp":
        return optuna.samplers.GPSampler(seed=s.seed, warn_independent_sampling=False)
    if s.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=s.seed, warn_independent_sampling=False)
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=s.seed, warn_independent_sampling=False)
    try:
        grid = {name: p.grid() for name, p in spec.space.items()}
    except ValueError as exc:
        raise ConfigError(f"{source}: search.sampler grid: {exc}.") from None
    points = math.prod(len(values) for values in grid.values())
    if s.num_samples > points:
        raise ConfigError(
            f"{source}: search.num_samples: {s.num_samples} trials but the grid has only {points} points; "
            f"set num_samples <= {points}."
        )
    return optuna.samplers.GridSampler(grid, seed=s.seed)


def _needs(p: ParamSpec) -> dict[str, Scalar]:
    """Values of the earlier parameters under which `p` is sampled (the first allowed of each)."""
    return {ref: want[0] if isinstance(want, list) else want for ref, want in (p.when or {}).items()}


def _ends(p: ParamSpec) -> list[tuple[str, Scalar]]:
    """Every categorical choice, or both ends of a numeric range: the pydantic constraints
    (gt, ge, lt, le) are intervals, so a range is valid exactly when both of its ends are."""
    if p.type == "categorical":
        return [("choice", c) for c in p.choices or []]
    cast = int if p.type == "int" else float
    return [("low", cast(p.low)), ("high", cast(p.high))]


def _reachable(p: ParamSpec, value: Scalar) -> bool:
    if p.type == "categorical":
        return value in (p.choices or [])
    return isinstance(value, (int, float)) and not isinstance(value, bool) and p.low <= value <= p.high


def _settable(base: dict[str, Any], key: str) -> bool:
    """Whether dotted `key` is a key of the run config `base` (or of a workload's or training
    function's own options, which they validate themselves)."""
    keys, free = settable_keys(RunConfig, base)
    return key in keys or any(key.startswith(prefix) for prefix in free)


def validate_space(spec: SweepSpec, source: str) -> None:
    """Every parameter of `space:` checked deterministically against the run-config schema and
    the workload's options: both ends of each range and every choice (with the values its
    `when:` needs), each `when:` value reachable, and each of `points_to_evaluate`."""
    from tuning.workloads.base import validate_workload  # the workloads register on import; `report` reads no workload

    base = spec.base_config()
    for name in spec.space:  # a key the config does not have: said once, with the close one
        if not _settable(base, name):
            close = close_key(name, RunConfig, base)
            hint = f"; did you mean {close}?" if close else " (space keys are dotted config names such as optimizer.lr)"
            raise ConfigError(f"{source}: space.{name}: no such key in the run config{hint}")

    def check(params: dict[str, Any], what: str) -> None:
        try:
            config = RunConfig.model_validate(apply_params(base, params))
        except ValidationError as err:
            detail = describe_error(err, source).split(": invalid configuration: ", 1)[1]
            raise ConfigError(
                f"{source}: {what} gives an invalid config: {detail} "
                "(space keys are dotted config names such as optimizer.lr)"
            ) from None
        if config.workload is None:
            return
        try:
            validate_workload(config.workload, source)
        except ConfigError as err:
            raise ConfigError(f"{what} gives an invalid workload: {err}") from None

    for name, p in spec.space.items():
        for ref, want in (p.when or {}).items():
            wanted = want if isinstance(want, list) else [want]
            never = [w for w in wanted if not _reachable(spec.space[ref], w)]
            if never:
                r = spec.space[ref]
                allowed = r.choices if r.type == "categorical" else f"[{r.low:g}, {r.high:g}]"
                raise ConfigError(
                    f"{source}: space.{name}.when: {ref} is never {never[0]!r}; {ref} takes {allowed}, "
                    f"so {name} would never be sampled."
                )
        for end, value in _ends(p):
            check({**_needs(p), name: value}, f"space.{name} at its {end} {value!r}")
    for i, point in enumerate(spec.search.points_to_evaluate):
        check(dict(point), f"search.points_to_evaluate[{i}]")
