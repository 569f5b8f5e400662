"""Sweep `space:` → an Optuna define-by-run function and sampler; sampled params → run config."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import optuna
from pydantic import ValidationError

from fishleg.config import RunConfig, describe_validation_error
from tuning.errors import ConfigError
from tuning.spec import ParamSpec, SweepSpec, set_dotted

__all__ = ["DefineByRun", "apply_params", "make_sampler", "validate_space"]

# The multivariate/grouped TPE and constant-liar options are marked experimental by Optuna.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


class DefineByRun:
    """Suggests each parameter in file order, skipping those whose `when:` is not met.
    A class, not a closure, so Ray can pickle the searcher that holds it."""

    def __init__(self, space: dict[str, ParamSpec]) -> None:
        self.space = space

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


def make_sampler(spec: SweepSpec, source: str = "sweep file") -> optuna.samplers.BaseSampler:
    s = spec.search
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed, multivariate=True, group=True, constant_liar=True)
    if s.sampler == "gp":
        return optuna.samplers.GPSampler(seed=s.seed)
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


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base run config (as a dict) with the sampled dotted parameters set."""
    config = copy.deepcopy(base)
    for name, value in params.items():
        set_dotted(config, name, value)
    return config


def validate_space(spec: SweepSpec, source: str, draws: int = 8) -> None:
    """Every parameter must land on a valid config key with a valid value: sample the space
    (plus `points_to_evaluate`) with a seeded random sampler and validate each config."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = DefineByRun(spec.space)
    candidates = [dict(point) for point in spec.search.points_to_evaluate]
    for _ in range(draws):
        trial = study.ask()
        fn(trial)
        candidates.append(trial.params)
        study.tell(trial, 0.0)
    base = spec.base_config()
    for params in candidates:
        try:
            RunConfig.model_validate(apply_params(base, params))
        except ValidationError as err:
            detail = describe_validation_error(err, source).split(": invalid configuration: ", 1)[1]
            raise ConfigError(
                f"{source}: space: the config built from sampled parameters {params} is invalid: {detail} "
                "(space keys are dotted config names such as optimizer.lr)"
            ) from None
