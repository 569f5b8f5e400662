"""The optimizers FishLeg is compared with, as run-config sections (`optimizer: {name: ...}`):
each a typed config whose fields are its constructor's own arguments, with its authors'
defaults, and `build(model)`.

- `adamw`, `adam`, `sgd`: torch.optim's own.
- `muon`: torch.optim.Muon on the 2-D hidden weights and AdamW on the rest (embeddings, the
  output head, norms, biases, any parameter that is not a matrix), as Muon's authors train
  with it; one optimizer, so one LR scheduler scales both (`MuonWithAdamW`).
- `soap`, `shampoo`: pytorch-optimizer's SOAP (Vyas et al. 2024: Adam in the eigenbasis of
  Shampoo's factors) and Shampoo (Gupta et al. 2018, W ← W − η L^{-1/4} G R^{-1/4}). Chosen
  because their state is tensors only (checkpoints load with `weights_only=True`) and their
  steps are deterministic (a resumed run equals an uninterrupted one); the same package's
  ScalableShampoo keeps Python objects in its state and its PSGD `Kron` draws from the global
  RNGs, so neither resumes exactly."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from fishleg.config import StrictModel
from fishleg.distributed import unwrap
from fishleg.step.partner import Partner, partner_parameters

__all__ = [
    "AdamConfig",
    "AdamWConfig",
    "MuonConfig",
    "MuonWithAdamW",
    "SGDConfig",
    "SOAPConfig",
    "ShampooConfig",
    "TorchOptimizerConfig",
    "muon_split",
]


class TorchOptimizerConfig(StrictModel):
    """An optimizer other than FishLeg: its fields are the constructor's own arguments, beside `name`."""

    optimizer_path: ClassVar[str]
    """The optimizer class as "module:Name", imported when built: pytorch-optimizer's import
    pulls in transformers and torch.distributed.tensor (about a second), which a run of
    another optimizer, and every sweep driver, need not pay."""

    @classmethod
    def optimizer_class(cls) -> type[torch.optim.Optimizer]:
        """The class `optimizer_path` names."""
        module, name = cls.optimizer_path.split(":")
        return getattr(importlib.import_module(module), name)

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over the model's trainable parameters."""
        params = [p for p in model.parameters() if p.requires_grad]
        return self.optimizer_class()(params, **self.model_dump(exclude={"name"}))


class AdamWConfig(TorchOptimizerConfig):
    """torch.optim.AdamW, the baseline FishLeg is compared with."""

    optimizer_path: ClassVar[str] = "torch.optim:AdamW"
    name: Literal["adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(1e-2, ge=0)


class AdamConfig(TorchOptimizerConfig):
    """torch.optim.Adam."""

    optimizer_path: ClassVar[str] = "torch.optim:Adam"
    name: Literal["adam"] = "adam"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class SGDConfig(TorchOptimizerConfig):
    """torch.optim.SGD (with momentum by default)."""

    optimizer_path: ClassVar[str] = "torch.optim:SGD"
    name: Literal["sgd"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)


class SOAPConfig(TorchOptimizerConfig):
    """SOAP (pytorch-optimizer's port of the authors' code, with their defaults)."""

    optimizer_path: ClassVar[str] = "pytorch_optimizer:SOAP"
    name: Literal["soap"] = "soap"
    lr: float = Field(3e-3, gt=0)
    betas: tuple[float, float] = (0.95, 0.95)
    shampoo_beta: float | None = Field(None, ge=0, lt=1, description="EMA of the factors; None: betas[1]")
    weight_decay: float = Field(0.01, ge=0)
    precondition_frequency: int = Field(10, gt=0, description="steps between eigenbasis updates")
    max_precondition_dim: int = Field(10000, gt=0)
    precondition_1d: bool = False
    eps: float = Field(1e-8, gt=0)


class ShampooConfig(TorchOptimizerConfig):
    """Shampoo as first published (pytorch-optimizer's `Shampoo`): per dimension a factor
    εI + Σ G Gᵀ, the step preconditioned by each factor's inverse 2k-th root (k: the tensor's order)."""

    optimizer_path: ClassVar[str] = "pytorch_optimizer:Shampoo"
    name: Literal["shampoo"] = "shampoo"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    preconditioning_compute_steps: int = Field(1, gt=0, description="steps between inverse-root updates")
    matrix_eps: float = Field(1e-6, gt=0, description="ε of the factors' εI start")


def muon_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(Muon's parameters, AdamW's): the 2-D weights of hidden layers go to Muon; embeddings,
    the output head (the last nn.Linear), norms, biases and every parameter that is not a
    matrix (a Conv filter included: torch's Muon takes matrices only) go to AdamW."""
    model = unwrap(model)
    others = {id(p) for p in partner_parameters(model, "embedding,norm,head")}
    trainable = [p for p in model.parameters() if p.requires_grad]
    muon = [p for p in trainable if p.ndim == 2 and id(p) not in others]
    return muon, [p for p in trainable if not any(p is q for q in muon)]


class MuonWithAdamW(torch.optim.Optimizer):
    """torch.optim.Muon on `muon_params` and torch.optim.AdamW on `adamw_params` (its
    `fishleg.step.partner.Partner`), stepped together. `param_groups` are the two optimizers' own
    groups (Muon's first), so an LR scheduler on this optimizer scales both lrs by the same
    factor, and the partner keeps its own lr (it follows none of Muon's); `state_dict` holds both."""

    def __init__(
        self,
        muon_params: Iterable[nn.Parameter],
        adamw_params: Iterable[nn.Parameter],
        muon: dict[str, Any],
        adamw: dict[str, Any],
    ) -> None:
        muon_params, adamw_params = list(muon_params), list(adamw_params)
        super().__init__(muon_params + adamw_params, {})
        self.muon = torch.optim.Muon(muon_params, **muon) if muon_params else None
        self.partner = Partner(torch.optim.AdamW(adamw_params, **adamw), state_key="adamw") if adamw_params else None
        self._group_parts()

    def _group_parts(self) -> None:
        self.param_groups = [g for part in (self.muon, self.partner) if part is not None for g in part.param_groups]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: ANN401 (the closure's loss, as torch's optimizers)
        """One step of both; the closure, if any, is called once."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.muon is not None:
            self.muon.step()
        if self.partner is not None:
            self.partner.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Both optimizers' state dicts."""
        return {
            "muon": None if self.muon is None else self.muon.state_dict(),
            **({"adamw": None} if self.partner is None else self.partner.state_dict()),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Both optimizers' state, from `state_dict()`."""
        if self.muon is not None:
            self.muon.load_state_dict(state_dict["muon"])
        if self.partner is not None:
            self.partner.load_state_dict(state_dict)
        self._group_parts()


class MuonConfig(StrictModel):
    """Muon on hidden matrices with AdamW on the rest (see `muon_split`), with the defaults of
    Muon's authors (Keller Jordan's `MuonWithAuxAdam`): lr 0.02 and momentum 0.95 (Nesterov)
    for Muon, lr 3e-4 and betas (0.9, 0.95) for AdamW, weight decay 0.01 for both."""

    name: Literal["muon"] = "muon"
    lr: float = Field(0.02, gt=0, description="Muon's lr")
    weight_decay: float = Field(0.01, ge=0, description="decoupled weight decay of both parts")
    momentum: float = Field(0.95, ge=0, lt=1)
    nesterov: bool = True
    ns_steps: int = Field(5, gt=0, description="Newton–Schulz iterations")
    adjust_lr_fn: Literal["original", "match_rms_adamw"] = Field(
        "original", description="'original': lr·√max(1, rows/cols); 'match_rms_adamw': 0.2·lr·√max(rows, cols)"
    )
    adamw_lr: float = Field(3e-4, gt=0, description="AdamW's lr (embeddings, head, norms, biases)")
    adamw_betas: tuple[float, float] = (0.9, 0.95)
    adamw_eps: float = Field(1e-10, gt=0)

    def build(self, model: nn.Module) -> MuonWithAdamW:
        """Muon and AdamW over the model's parameters, split by `muon_split`."""
        muon_params, adamw_params = muon_split(model)
        muon = {k: getattr(self, k) for k in ("lr", "weight_decay", "momentum", "nesterov", "ns_steps", "adjust_lr_fn")}
        adamw = {"lr": self.adamw_lr, "betas": self.adamw_betas, "eps": self.adamw_eps}
        adamw["weight_decay"] = self.weight_decay
        return MuonWithAdamW(muon_params, adamw_params, muon, adamw)
