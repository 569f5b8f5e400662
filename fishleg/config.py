"""Configuration as data: the optimizer configs and the run-config file format.

One schema serves the optimizer's constructor, `fishleg-tune train` files, sweep base
configs and exported best configs, so a tuned value has the same name everywhere
(`lr`, `aux_lr`, `aux_batch_size`, `damping`, `update_aux_every`, `q_structure`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import nn

from fishleg.structures import STRUCTURES

if TYPE_CHECKING:
    from fishleg.aux_data import AuxData
    from fishleg.likelihoods import Likelihood

__all__ = [
    "AdamConfig",
    "AdamWConfig",
    "ConfigError",
    "FishLegConfig",
    "OptimizerConfig",
    "RunConfig",
    "SGDConfig",
    "TrainingConfig",
    "WorkloadConfig",
    "describe_validation_error",
    "load_config",
    "save_config",
]


class ConfigError(ValueError):
    """Invalid configuration; the message is one paragraph fit to show a user."""


class StrictModel(BaseModel):
    """Frozen, and unknown keys are errors: a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FishLegConfig(StrictModel):
    """FishLeg hyperparameters; defaults are the reference implementation's."""

    name: Literal["fishleg"] = "fishleg"
    lr: float = Field(5e-2, gt=0, description="η, the parameter step size")
    aux_lr: float = Field(1e-4, gt=0, description="α, Adam step size of the λ updates")
    aux_batch_size: int = Field(100, gt=0, description="inputs per auxiliary Fisher batch")
    damping: float = Field(0.5, gt=0, description="γ in Q ≈ (F + γI)⁻¹")
    update_aux_every: int = Field(10, gt=0, description="parameter steps per λ update")
    q_structure: str = Field("kron", description="Q(λ) family for Linear/Conv layers")
    kron_sum_rank: int = Field(2, gt=0, description="terms of kron_sum")
    beta: float = Field(0.9, ge=0, lt=1, description="momentum of Q·g")
    weight_decay: float = Field(1e-5, ge=0)
    init_scale: float = Field(1.0, gt=0, description="Q starts at init_scale·I")
    aux_betas: tuple[float, float] = (0.9, 0.999)
    aux_eps: float = Field(1e-8, gt=0)
    u_sampling: Literal["gradient", "gaussian"] = "gradient"
    normalize_aux: bool = True
    precondition_aux: bool = True

    @field_validator("q_structure")
    @classmethod
    def _known_structure(cls, value: str) -> str:
        if value not in STRUCTURES:
            raise ValueError(f"must be one of {sorted(STRUCTURES)}")
        return value

    @field_validator("aux_betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError("both betas must be in [0, 1)")
        return value

    def build(
        self, model: nn.Module, *, likelihood: Likelihood | None = None, aux_data: AuxData | None = None
    ) -> torch.optim.Optimizer:
        from fishleg.optimizer import FishLeg

        if likelihood is None:
            raise ConfigError("optimizer 'fishleg' needs a likelihood (e.g. CategoricalLikelihood())")
        return FishLeg(model, likelihood, aux_data, **self.model_dump(exclude={"name"}))


class AdamWConfig(StrictModel):
    name: Literal["adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(1e-2, ge=0)

    def build(self, model: nn.Module, **_: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), **self.model_dump(exclude={"name"}))


class AdamConfig(StrictModel):
    name: Literal["adam"] = "adam"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)

    def build(self, model: nn.Module, **_: Any) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), **self.model_dump(exclude={"name"}))


class SGDConfig(StrictModel):
    name: Literal["sgd"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)

    def build(self, model: nn.Module, **_: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), **self.model_dump(exclude={"name"}))


OptimizerConfig = Annotated[Union[FishLegConfig, AdamWConfig, AdamConfig, SGDConfig], Field(discriminator="name")]
OPTIMIZER_NAMES = ("fishleg", "adamw", "adam", "sgd")


class WorkloadConfig(BaseModel):
    """A workload by registered name (or `module:function`) and its own options, which the
    workload validates."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainingConfig(StrictModel):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(64, gt=0)
    seed: int = 0
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return value


class RunConfig(StrictModel):
    """One training run: what `fishleg-tune train` reads and sweeps export."""

    workload: WorkloadConfig
    optimizer: OptimizerConfig = Field(default_factory=FishLegConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    provenance: dict[str, Any] | None = None

    def build_optimizer(
        self, model: nn.Module, *, likelihood: Likelihood | None = None, aux_data: AuxData | None = None
    ) -> torch.optim.Optimizer:
        return self.optimizer.build(model, likelihood=likelihood, aux_data=aux_data)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        data["workload"] = {"name": self.workload.name, **self.workload.options}
        return data


def describe_validation_error(err: ValidationError, source: str) -> str:
    """One paragraph naming the source, each bad key path, what was given and what is allowed."""
    parts = []
    for e in err.errors():
        raw = [str(x) for x in e["loc"]]
        loc = [x for i, x in enumerate(raw) if not (i and raw[i - 1] == "optimizer" and x in OPTIMIZER_NAMES)]
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        if not loc:  # a whole-file check: its message names its own keys
            parts.append(msg)
            continue
        given = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {e.get('input')!r})"
        parts.append(f"{'.'.join(loc)}: {msg}{given}")
    return f"{source}: invalid configuration: " + "; ".join(parts) + "."


def parse_yaml(path: Path) -> Any:
    """yaml.safe_load with errors that name the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror}).") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}.") from None


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """A YAML file validated as `model`; every problem is a one-paragraph ConfigError."""
    path = Path(path)
    data = parse_yaml(path)
    if not isinstance(data, dict):
        keys = ", ".join(model.model_fields)
        raise ConfigError(f"{path}: expected a mapping with keys such as {keys}.")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, str(path))) from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config (a `fishleg-tune train` file or an exported best config)."""
    return load_yaml_model(path, RunConfig)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
