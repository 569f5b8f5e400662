"""The sweep file: a base run config plus `metric`, `space`, `search`, `scheduler`,
`resources`, `mlflow`, `selection` and `name`, validated in one place with errors that name the key."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, FiniteFloat, field_validator, model_validator

from fishleg.config import StrictModel
from tuning.run.config import NO_OPTIMIZER, RunConfig, TrainsOne, load_yaml_model
from tuning.run.overrides import Override, set_dotted

__all__ = ["ParamSpec", "SweepSpec", "apply_params", "load_sweep"]

Scalar = bool | int | float | str | None


class ParamSpec(StrictModel):
    """One searched hyperparameter, keyed in `space:` by its dotted config name."""

    type: Literal["float", "int", "categorical"]
    low: FiniteFloat | None = None
    high: FiniteFloat | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Scalar] | None = None
    when: dict[str, Scalar | list[Scalar]] | None = Field(
        None, description="sample only if every named (earlier) parameter has one of these values"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("categorical takes 'choices', not 'low'/'high'")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs both 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got low={self.low})")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be combined")
        if self.choices is not None:
            raise ValueError(f"{self.type} takes 'low'/'high', not 'choices'")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("int bounds must be whole numbers")
        return self

    def admits(self, value: Any) -> bool:
        """Whether `value` is one this parameter can take (a starting point's, an override's)."""
        if self.type == "categorical":
            return value in (self.choices or []) and type(value) in {type(c) for c in self.choices or []}
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        """What it can take, for a message: '[1e-3, 1] (log)' or 'one of [16, 32]'."""
        if self.type == "categorical":
            return f"one of {self.choices}"
        return f"{'whole numbers in ' if self.type == 'int' else ''}[{self.low:g}, {self.high:g}]"

    def grid(self) -> list[Scalar]:
        """Every value, for the grid sampler (floats need a step)."""
        if self.type == "categorical":
            return list(self.choices or [])
        low, high = self.low, self.high
        if self.type == "int":
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ValueError("the grid sampler needs 'step' on float parameters")
        count = int(round((high - low) / self.step)) + 1
        return [low + i * self.step for i in range(count)]


class MetricSpec(StrictModel):
    """What trials are ranked by: a per-epoch validation (or training) metric."""

    name: str = "val_loss"
    mode: Literal["min", "max"] = "min"

    @field_validator("name")
    @classmethod
    def _not_test(cls, value: str) -> str:
        if value.startswith("test_"):
            raise ValueError(
                "sweeps choose on validation metrics (val_loss, val_accuracy); test metrics are "
                "evaluated once, for the chosen config, and cannot be what chooses it"
            )
        return value


class SearchSpec(StrictModel):
    sampler: Literal["tpe", "gp", "cmaes", "random", "grid", "qmc"] = "tpe"
    seed: int = Field(0, ge=0, lt=2**32, description="the sampler's seed (numpy's range)")
    num_samples: int = Field(20, gt=0)
    max_concurrent: int = Field(2, gt=0)
    max_failures: int = Field(
        1,
        ge=0,
        description="retries of a trial whose process was lost, from its last checkpoint (code that raises fails once)",
    )
    points_to_evaluate: list[dict[str, Scalar]] = Field(default_factory=list)
    time_budget_s: float | None = Field(
        None, gt=0, description="the sweep's wall-clock budget: then running trials stop TIMED_OUT, none starts"
    )
    trial_time_budget_s: float | None = Field(
        None, gt=0, description="each trial's wall-clock budget (a hanging fit too): past it the trial stops TIMED_OUT"
    )
    warm_start: list[str] = Field(
        default_factory=list,
        description="folders of earlier sweeps (same workload, budget and metric) whose finished trials the "
        "sampler is told before the first new trial (tuning.sweep.warm_start)",
    )


class SchedulerSpec(StrictModel):
    type: Literal["asha", "hyperband", "median", "none"] = "asha"
    grace_period: int = Field(1, gt=0, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1)


class ResourcesSpec(StrictModel):
    """What a trial asks of the cluster: `cpu` and `gpu` per worker, and `workers` processes
    (more than one: the trial trains data-parallel under Ray Train, see `tuning.sweep.workers`)."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)
    workers: int = Field(1, ge=1, description="processes a trial trains on, data-parallel (DDP) when more than one")


MAX_SEEDS = 64  # fresh seeds per re-trained config: each is a full training run


class SelectionSpec(StrictModel):
    """How the exported config is chosen once the trials end: the best trial (`robust_top` 0),
    or the best validation mean of the top `robust_top` trials re-trained on `seeds` fresh
    seeds. Part of the sweep, so `resume` finishes the sweep the way it started."""

    robust_top: int = Field(0, ge=0, le=100, description="re-train the top K trials on fresh seeds (0: off)")
    seeds: int = Field(3, ge=1, le=MAX_SEEDS, description="fresh seeds per re-trained config (with robust_top)")


class MlflowSpec(StrictModel):
    tracking_uri: str | None = None
    experiment: str | None = None


class SweepSpec(TrainsOne):
    """A sweep file: a base run config plus what to search, how, and where to record it."""

    name: str | None = None
    metric: MetricSpec = Field(default_factory=MetricSpec)
    space: dict[str, ParamSpec] = Field(min_length=1)
    search: SearchSpec = Field(default_factory=SearchSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec)
    selection: SelectionSpec = Field(default_factory=SelectionSpec)

    @model_validator(mode="after")
    def _conditions_name_earlier_parameters(self) -> SweepSpec:
        seen: list[str] = []
        for name, param in self.space.items():
            for ref in param.when or {}:
                if ref not in seen:
                    where = "a later parameter" if ref in self.space else "not a parameter of space"
                    raise ValueError(f"space.{name}.when names {ref!r}, {where}; allowed: {seen or 'none'}")
            seen.append(name)
        for i, point in enumerate(self.search.points_to_evaluate):
            unknown = sorted(set(point) - set(self.space))
            if unknown:
                raise ValueError(f"search.points_to_evaluate[{i}] names {unknown}, not in space {list(self.space)}")
            for name, value in point.items():
                if not self.space[name].admits(value):
                    raise ValueError(
                        f"search.points_to_evaluate[{i}].{name}: {value!r} is outside the space it starts; "
                        f"allowed: {self.space[name].describe()} (space.{name})"
                    )
        return self

    @model_validator(mode="after")
    def _batches_split_into_workers(self) -> SweepSpec:
        workers = self.resources.workers
        if self.trainable is None and self.training.batch_size % workers:
            raise ValueError(
                f"training.batch_size {self.training.batch_size} does not split into {workers} equal parts, one per "
                f"worker (resources.workers); make it a multiple of {workers}"
            )
        return self

    @property
    def grace_period(self) -> int:
        """The scheduler's grace period, at most the budget (ASHA refuses a longer one)."""
        return min(self.scheduler.grace_period, self.budget)

    @property
    def warnings(self) -> list[str]:
        """What will happen that the file may not mean, for the plan to say."""
        out = []
        if self.scheduler.type in ("asha", "median") and self.scheduler.grace_period > self.budget:
            out.append(
                f"scheduler.grace_period {self.scheduler.grace_period} is more than training.epochs {self.budget}: "
                f"it is taken as {self.budget}, so the scheduler stops no trial early"
            )
        if "optimizer" not in self.model_fields_set:
            out.append(NO_OPTIMIZER)
        return out

    @property
    def budget(self) -> int:
        """Epochs a trial runs when it is not stopped early (the maximum fidelity)."""
        return self.training.epochs

    def base_config(self) -> dict[str, Any]:
        """The run config every trial starts from, as a dict (the space's values are set on it)."""
        return RunConfig(
            workload=self.workload, trainable=self.trainable, optimizer=self.optimizer, training=self.training
        ).to_dict()

    def config_for(self, params: dict[str, Any]) -> RunConfig:
        """The run config of a trial with these sampled values, validated (once: pass it on)."""
        return RunConfig.model_validate(apply_params(self.base_config(), params))


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base run config (as a dict) with the sampled dotted parameters set."""
    config = copy.deepcopy(base)
    for name, value in params.items():
        set_dotted(config, name, value)
    return config


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_sweep(path: str | Path, trainable: str | None = None, overrides: Sequence[Override] = ()) -> SweepSpec:
    """Read and validate a sweep file; every problem is a one-paragraph ConfigError.
    `trainable` and `overrides` as in `read_yaml_model`."""
    return load_yaml_model(path, SweepSpec, trainable, overrides)
