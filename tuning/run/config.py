"""The run-config file format: what `fishleg-tune train` reads, sweeps start from and export.

A run config is what trains (`workload:`, a built-in or plugin workload, or `trainable:`,
the user's own training function), `optimizer:` (FishLeg, or a rival by `name:` with its
constructor's own argument names: `tuning.run.optimizers`), `training:` and an optional `provenance:`. The optimizer
section is `fishleg.FishLegConfig` itself, so `fishleg.load_config` reads the same files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, Union

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn

from fishleg import FishLeg
from fishleg.config import FishLegConfig, StrictModel, invalid
from tuning.errors import ConfigError
from tuning.records.files import write_atomically
from tuning.run.optimizers import AdamConfig, AdamWConfig, MuonConfig, SGDConfig, ShampooConfig, SOAPConfig
from tuning.run.overrides import Override, apply_overrides, close_key
from tuning.yaml_files import parse_yaml

if TYPE_CHECKING:
    from fishleg.curvature.aux_data import AuxData
    from fishleg.likelihoods import Likelihood

__all__ = [
    "NO_OPTIMIZER",
    "OPTIMIZER_NAMES",
    "OptimizerConfig",
    "RunConfig",
    "TrainableConfig",
    "TrainingConfig",
    "TrainsOne",
    "WorkloadConfig",
    "describe_error",
    "load_run_config",
    "load_yaml_model",
    "read_yaml_model",
    "save_config",
]


OPTIMIZER_CONFIGS: dict[str, type[BaseModel]] = {
    cls.model_fields["name"].default: cls
    for cls in (FishLegConfig, AdamWConfig, AdamConfig, SGDConfig, MuonConfig, SOAPConfig, ShampooConfig)
}
OptimizerConfig = Annotated[Union[tuple(OPTIMIZER_CONFIGS.values())], Field(discriminator="name")]
NO_OPTIMIZER = "no optimizer: section: FishLeg with all its defaults (name one, e.g. optimizer: {name: adamw})"
OPTIMIZER_NAMES = tuple(OPTIMIZER_CONFIGS)


class NamedConfig(BaseModel):
    """Something named in a config (`name:`), with its own options beside the name."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        """Everything but `name`: its own options."""
        return dict(self.model_extra or {})

    def to_dict(self) -> dict[str, Any]:
        """The file form: the options beside the name."""
        return {"name": self.name, **self.options}


class WorkloadConfig(NamedConfig):
    """A workload by registered name (or `module:function`) and its own options, which the
    workload validates."""


class TrainableConfig(NamedConfig):
    """The user's own training function, `module:function` (see `tuning.run.fit`), and its own
    options (`config.trainable.options` in the function). A bare string is the name."""

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _options_beside_the_name(self) -> TrainableConfig:
        if "options" in self.options:
            raise ValueError(
                "give the function's options beside its name, not under `options:` "
                "(trainable: {name: mypkg.train:fit, hidden: 64}); the function reads them as "
                "config.trainable.options and a sweep searches them as trainable.<option>"
            )
        return self


class TrainingConfig(StrictModel):
    """How long and how a run trains; `epochs` is a sweep's budget."""

    epochs: int = Field(10, gt=0)
    batch_size: int = Field(64, gt=0)
    seed: int = Field(0, ge=0, lt=2**32, description="the run's seed (numpy's range)")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return value


class TrainsOne(StrictModel):
    """What run configs and sweep files share: a `workload` (the built-in loop) or a
    `trainable` (the user's function), never both; the optimizer; the training budget."""

    workload: WorkloadConfig | None = None
    trainable: TrainableConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=FishLegConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @model_validator(mode="after")
    def _one_subject(self) -> TrainsOne:
        if (self.workload is None) == (self.trainable is None):
            raise ValueError(
                "give exactly one of workload: (a built-in workload such as digits_classifier, or a plugin "
                "'package.module:function' that builds one) and trainable: (your own training function, "
                "'package.module:function')"
            )
        return self

    @property
    def subject(self) -> str:
        """What trains: the workload's or the training function's name."""
        named = self.workload if self.workload is not None else self.trainable
        return "" if named is None else named.name

    @property
    def plugin_names(self) -> list[str]:
        """The user's code this config names (`package.module:function`), to import or ship."""
        return [self.subject] if ":" in self.subject else []


class RunConfig(TrainsOne):
    """One training run: what `fishleg-tune train` reads and sweeps export."""

    provenance: dict[str, Any] | None = None

    def build_optimizer(
        self,
        model: nn.Module,
        *,
        likelihood: Likelihood | None = None,
        aux_data: AuxData | str | None = None,
        seed: int | None = None,
    ) -> torch.optim.Optimizer:
        """The configured optimizer; FishLeg needs the likelihood (and usually aux_data), and
        draws its aux batches and probes from `seed` (the run's training seed, by default)."""
        if not isinstance(self.optimizer, FishLegConfig):
            return self.optimizer.build(model)
        if likelihood is None:
            raise ConfigError("optimizer 'fishleg' needs a likelihood (e.g. CategoricalLikelihood())")
        seed = self.training.seed if seed is None else seed
        return FishLeg.from_config(model, self.optimizer, likelihood=likelihood, aux_data=aux_data, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """The file form: plain YAML-safe values, workload options beside its name."""
        data = self.model_dump(mode="json", exclude_none=True)
        for key, named in (("workload", self.workload), ("trainable", self.trainable)):
            if named is not None:
                data[key] = named.to_dict()
        return data


def describe_error(err: ValidationError, source: str, prefix: str = "") -> str:
    """`fishleg.config.invalid` for run-config-shaped files (optimizer names left out of paths)."""
    return invalid(err, source, prefix=prefix, union_tags=OPTIMIZER_NAMES)


M = TypeVar("M", bound=BaseModel)


def read_yaml_model(
    path: str | Path, model: type[M], trainable: str | None = None, overrides: Sequence[Override] = ()
) -> tuple[M, dict[str, Any]]:
    """A YAML file validated as `model`, with the file's data as resolved (the overrides set);
    every problem is a one-paragraph ConfigError. `trainable`: the name of a training function
    given as an object (`tuning.search`, `tuning.train`), used when the file names neither
    `workload:` nor `trainable:`. `overrides`: `key=value`s from the command line."""
    path = Path(path)
    data = parse_yaml(path)
    if not isinstance(data, dict):
        keys = ", ".join(model.model_fields)
        raise ConfigError(f"{path}: expected a mapping with keys such as {keys}.")
    if trainable is not None and not {"workload", "trainable"} & set(data):
        data = {**data, "trainable": trainable}
    source = str(path)
    if overrides:
        data = apply_overrides(data, overrides, model, source)
        source += " with " + " ".join(o.shown for o in overrides)
    try:
        return model.model_validate(data), data
    except ValidationError as err:
        unknown = _unknown_keys(err)
        tuned_for = _tuned_for(unknown, data)
        if tuned_for is not None and len(unknown) == len(err.errors()):
            raise ConfigError(_tuned_for_another(source, tuned_for, data["optimizer"]["name"], unknown)) from None
        raise ConfigError(describe_error(err, source) + _did_you_mean(unknown, model, data)) from None


def _unknown_keys(err: ValidationError) -> list[str]:
    """The dotted keys a validation error calls unknown (optimizer union tags left out)."""
    return [
        ".".join(str(x) for i, x in enumerate(e["loc"]) if not (i and x in OPTIMIZER_NAMES))
        for e in err.errors()
        if e["type"] == "extra_forbidden"
    ]


def _tuned_for_another(source: str, tuned_for: str, named: str, unknown: list[str]) -> str:
    """The advice for a config tuned for one optimizer run with another, first; the keys short."""
    keys = [k.removeprefix("optimizer.") for k in unknown]
    shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return (
        f"{source}: this config was tuned for {tuned_for}, not {named}: its optimizer: section holds {tuned_for}'s "
        f"settings ({shown}), and its lr and weight decay are {tuned_for}'s, not {named}'s. Tune {named} with its "
        f"own sweep (`fishleg-tune compare` runs both at equal budget), or set optimizer.name back to {tuned_for}."
    )


def _did_you_mean(unknown: list[str], model: type[BaseModel], data: dict[str, Any]) -> str:
    """' Did you mean training.epochs (for training.epoch)?' for each unknown key with a close known one."""
    hints = [f"{close} (for {key})" for key in unknown if (close := close_key(key, model, data)) is not None]
    return f" Did you mean {', '.join(hints)}?" if hints else ""


def _tuned_for(unknown: list[str], data: dict[str, Any]) -> str | None:
    """The optimizer whose settings the unknown `optimizer.` keys all are, if another than the
    one named (a config tuned for FishLeg loaded with `optimizer.name=adamw`, say)."""
    section = data.get("optimizer")
    if not unknown or not isinstance(section, dict) or not all(k.startswith("optimizer.") for k in unknown):
        return None
    keys = {k.removeprefix("optimizer.") for k in unknown}
    owners = (name for name, cls in OPTIMIZER_CONFIGS.items() if keys <= cls.model_fields.keys())
    return next((name for name in owners if name != section.get("name")), None)


def load_yaml_model(
    path: str | Path, model: type[M], trainable: str | None = None, overrides: Sequence[Override] = ()
) -> M:
    """`read_yaml_model`'s validated model alone."""
    return read_yaml_model(path, model, trainable, overrides)[0]


def load_run_config(path: str | Path, trainable: str | None = None, overrides: Sequence[Override] = ()) -> RunConfig:
    """Read and validate a run config (a `fishleg-tune train` file or an exported best config);
    `trainable` and `overrides` as in `read_yaml_model`."""
    return load_yaml_model(path, RunConfig, trainable, overrides)


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write a run config in the format `load_run_config` (and `fishleg.load_config`) read,
    atomically (an export interrupted by a crash leaves the previous file whole)."""
    write_atomically(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False))
