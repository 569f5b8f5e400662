"""Workloads: a model, its likelihood, data and metrics, built by name from a config.

Built-in workloads register themselves with `@register_workload`; a user's own is named in
a config as `workload: {name: "my_pkg.my_module:build"}` (explicit `module:function` only),
a function with the same signature as the built-ins: (options dict, seed) → Workload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor, nn
from torch.utils.data import Dataset

from fishleg.likelihoods import Likelihood
from fishleg.registry import Registry
from tuning.errors import ConfigError
from tuning.run.batches import Batches, DatasetBatches, TensorBatches
from tuning.run.config import WorkloadConfig, describe_error
from tuning.run.plugins import check_callable_as, import_function

__all__ = [
    "Options",
    "Workload",
    "WORKLOADS",
    "build_workload",
    "register_workload",
    "split_validation",
    "workload_metrics",
]

Augment = Callable[[Tensor, torch.Generator], Tensor]


Parts = tuple[Dataset, Dataset, Dataset]
PARTS = ("train", "val", "test")


@dataclass
class Workload:
    """What a training run needs, in three parts: train (stepped on), validation (chosen on:
    every epoch's metrics, what sweeps rank) and test (evaluated once, for what was chosen).
    Data are in-memory tensors, or (`from_datasets`) map-style Datasets of (x, y) items read
    through DataLoaders with `num_workers` processes; `augment` (optional) maps a training
    batch to an augmented one on its own device."""

    model: nn.Module
    likelihood: Likelihood
    train_x: Tensor | None
    train_y: Tensor | None
    val_x: Tensor | None
    val_y: Tensor | None
    test_x: Tensor | None
    test_y: Tensor | None
    classifier: bool
    augment: Augment | None = None
    datasets: Parts | None = None
    num_workers: int = 0

    @classmethod
    def from_datasets(
        cls,
        model: nn.Module,
        likelihood: Likelihood,
        parts: Parts,
        *,
        classifier: bool,
        num_workers: int = 0,
        augment: Augment | None = None,
    ) -> Workload:
        """A workload whose (train, val, test) data are Datasets, not tensors."""
        return cls(model, likelihood, *([None] * 6), classifier, augment, parts, num_workers)

    def batches(self, part: str, device: torch.device) -> Batches:
        """The batches of `part` ('train', 'val' or 'test') on `device`."""
        if self.datasets is not None:
            return DatasetBatches(self.datasets[PARTS.index(part)], device, self.num_workers)
        return TensorBatches(getattr(self, f"{part}_x"), getattr(self, f"{part}_y"), device)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names this workload reports each epoch."""
        return metric_names(self.classifier)


def metric_names(classifier: bool) -> tuple[str, ...]:
    """What a run reports each epoch (the metrics a sweep may rank on)."""
    base = ("train_loss", "val_loss")
    return base + ("val_accuracy",) if classifier else base


def held_out_metric_names(classifier: bool) -> tuple[str, ...]:
    """What the test split gives, once, for a chosen config."""
    return ("test_loss", "test_accuracy") if classifier else ("test_loss",)


SPLIT_SEED = 0  # the validation split never depends on a trial's seed: every trial sees the same one


def split_validation(x: Tensor, y: Tensor, fraction: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_x, train_y, val_x, val_y): a fixed, seeded `fraction` of the training data held
    out for validation. x (N, ...), y (N, ...)."""
    n = len(x)
    n_val = min(max(1, round(fraction * n)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    train, val = perm[n_val:], perm[:n_val]
    return x[train], y[train], x[val], y[val]


class Options(BaseModel):
    """Base for a workload's options (strict: unknown keys are errors). `val_fraction` is the
    share of the training data held out for validation; each workload sets its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    val_fraction: float = Field(0.1, gt=0, lt=1, description="training data held out for validation")


Builder = Callable[[dict[str, Any], int], Workload]


Check = Callable[[Any], None]


@dataclass(frozen=True)
class WorkloadEntry:
    """A registered workload: its builder, its options' schema, whether it classifies (which
    decides its metrics; None: unknown, for plugins) and an optional data check."""

    build: Builder
    options: type[Options] | None
    classifier: bool | None
    check: Check | None = None


WORKLOADS: Registry[str, WorkloadEntry] = Registry("workload")
_F = TypeVar("_F", bound=Builder)


def register_workload(
    name: str, options: type[Options], classifier: bool, check: Check | None = None
) -> Callable[[_F], _F]:
    """Decorator for a builder (options, seed) → Workload; `classifier` decides the metrics;
    `check(options)` raises DatasetUnavailable if the data can be neither read nor downloaded
    (the preflight calls it, so a sweep never starts trials that cannot load their data)."""

    def wrap(fn: _F) -> _F:
        WORKLOADS.register(name)(WorkloadEntry(fn, options, classifier, check))
        return fn

    return wrap


def _entry(name: str, source: str) -> WorkloadEntry:
    if name in WORKLOADS:
        return WORKLOADS[name]
    if ":" not in name:
        raise ConfigError(
            f"{source}: workload.name: unknown workload {name!r}; allowed: {sorted(WORKLOADS)} "
            "or a plugin as 'package.module:function'."
        )
    fn = import_function(name, f"{source}: workload.name")
    expected = "a workload builder; a builder takes (options: dict, seed: int) and returns a tuning.workloads.Workload."
    check_callable_as(fn, ({}, 0), f"{source}: workload.name: {name!r}", expected)
    return WorkloadEntry(fn, None, None)


def validate_workload(config: WorkloadConfig, source: str = "config", data: bool = False) -> None:
    """Check the name and the options without building anything; with `data`, also that the
    data set is on disk or can be downloaded (no data is read)."""
    entry = _entry(config.name, source)
    if entry.options is not None:
        options = _parse_options(entry.options, config, source)
        if data and entry.check is not None:
            entry.check(options)


def workload_metrics(config: WorkloadConfig, source: str = "config") -> tuple[str, ...] | None:
    """Metric names the workload reports, if known without building it (plugins: None)."""
    entry = _entry(config.name, source)
    return None if entry.classifier is None else metric_names(entry.classifier)


def _parse_options(options: type[Options], config: WorkloadConfig, source: str) -> Options:
    try:
        return options.model_validate(config.options)
    except ValidationError as err:
        raise ConfigError(describe_error(err, source, prefix="workload.")) from None


def build_workload(config: WorkloadConfig, seed: int, source: str = "config") -> Workload:
    """Validate the options and build the workload. Model initialisation is seeded with `seed`
    inside a forked RNG, so the caller's global random stream is left as it was."""
    entry = _entry(config.name, source)
    opts: Any = config.options if entry.options is None else _parse_options(entry.options, config, source)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        workload = entry.build(opts, seed)
    if not isinstance(workload, Workload):
        raise ConfigError(
            f"{source}: workload.name: {config.name!r} returned {type(workload).__name__}, not a "
            "tuning.workloads.Workload."
        )
    return workload
