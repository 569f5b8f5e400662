"""A first-order partner for the parameters a Kronecker Q does not suit: embeddings (a row per
token, each seen rarely: a Fisher block per row is what AdamW's diagonal already is),
normalisation scales and shifts, and optionally the output head, as Muon's and Shampoo's
implementations hand them to AdamW. Kinds are chosen by name from `PARAM_KINDS`; `Partner`
steps the partner beside the main optimizer (FishLeg's AdamW, Muon's AdamW)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fishleg.registry import Registry

__all__ = ["PARAM_KINDS", "Partner", "parse_kinds", "partner_parameters", "register_param_kind"]

ParamKind = Callable[[nn.Module, nn.Module], bool]
"""(model, module) → whether `module`'s own parameters belong to the kind."""

PARAM_KINDS: Registry[str, ParamKind] = Registry("partner parameter kind")


def register_param_kind(name: str) -> Callable[[ParamKind], ParamKind]:
    """Decorator: a kind of module whose parameters `partner_params` may name."""
    return PARAM_KINDS.register(name)


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


@register_param_kind("embedding")
def _embedding(model: nn.Module, module: nn.Module) -> bool:
    return isinstance(module, nn.Embedding | nn.EmbeddingBag)


@register_param_kind("norm")
def _norm(model: nn.Module, module: nn.Module) -> bool:
    return isinstance(module, _NORMS)


@register_param_kind("head")
def _head(model: nn.Module, module: nn.Module) -> bool:
    """The model's last nn.Linear, in module order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return bool(linears) and module is linears[-1]


def parse_kinds(names: str) -> list[str]:
    """'embedding,norm' → ['embedding', 'norm'], each checked against PARAM_KINDS."""
    kinds = [name.strip() for name in names.split(",") if name.strip()]
    for kind in kinds:
        PARAM_KINDS[kind]  # noqa: B018 (raises with the allowed names)
    return kinds


def partner_parameters(model: nn.Module, kinds: str) -> list[nn.Parameter]:
    """The trainable parameters of `model`'s modules of the given kinds (comma-separated)."""
    checks = [PARAM_KINDS[kind] for kind in parse_kinds(kinds)]
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if any(check(model, module) for check in checks):
            found.update({id(p): p for p in module.parameters(recurse=False) if p.requires_grad})
    return list(found.values())


class Partner:
    """A first-order optimizer stepped beside a main one, on parameters the main one leaves to
    it. `follows`: the main optimizer's hyperparameters (keys of `lead`, its parameter group)
    copied into the partner's groups before each step, so one schedule drives both (FishLeg's
    AdamW takes its lr and weight decay); none when the partner keeps its own (Muon's AdamW,
    whose group the scheduler reaches directly). Its state is the optimizer's, under
    `state_key`, among the main optimizer's other parts' keys."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lead: Mapping[str, Any] | None = None,
        follows: Sequence[str] = (),
        state_key: str = "partner",
    ) -> None:
        if follows and lead is None:
            raise ValueError("Partner: follows names a main group's hyperparameters, so it needs that group (lead)")
        self.optimizer = optimizer
        self.lead = lead
        self.follows = tuple(follows)
        self.state_key = state_key

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The partner optimizer's own groups."""
        return self.optimizer.param_groups

    def step(self) -> None:
        """The partner's step, at the main group's values of `follows`."""
        for group in self.optimizer.param_groups:
            for key in self.follows:
                group[key] = self.lead[key]
        self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the partner's gradients, with the main optimizer's."""
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The partner optimizer's state, under `state_key`."""
        return {self.state_key: self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.optimizer.load_state_dict(state[self.state_key])
