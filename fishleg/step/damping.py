"""Damping strategies: γ = the parameter group's `damping` × a scale the strategy owns.

The group's value is what schedulers and users set; the scale is what an adaptive rule
moves. Both the aux loss (Q(λ) ≈ (F + γI)⁻¹) and the quadratic step read the same γ."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fishleg.distributed import mean_across_ranks
from fishleg.step.schedules import Schedule, at_step

__all__ = ["Damping", "FixedDamping", "LevenbergMarquardt"]


class Damping:
    """γ's strategy. group: the optimizer's parameter group (its "damping" is γ's base, read at
    each use, so a scheduler may move it); `scale`: a 0-d tensor on the parameters' device, 1
    unless an adaptive rule moves it."""

    needs_closure = False  # whether `step` must be given a closure that recomputes the loss

    def __init__(self, group: dict[str, Any], device: torch.device) -> None:
        self.group = group
        self.scale = torch.ones((), device=device)
        self.last_rho = torch.full((), float("nan"), device=device)

    @property
    def base(self) -> float:
        """The parameter group's damping."""
        return self.group["damping"]

    def gamma(self) -> Tensor:
        """γ as a 0-d tensor (no host sync)."""
        return self.base * self.scale

    def due(self, step: int) -> bool:
        """Whether parameter step `step` (from 1) is judged by `adapt`."""
        return False

    def adapt(self, change: Tensor, predicted: Tensor) -> None:
        """Move the scale after a step whose loss changed by `change` where the quadratic model
        predicted `predicted`."""

    def state_dict(self) -> dict[str, Tensor]:
        """The scale and the last reduction ratio (keys kept from the first checkpoints)."""
        return {"damping_scale": self.scale.clone(), "last_rho": self.last_rho.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what `state_dict` saved."""
        self.scale.copy_(state["damping_scale"])
        self.last_rho = state["last_rho"].to(self.scale.device)


class FixedDamping(Damping):
    """γ = the group's damping (the scale stays 1)."""


class LevenbergMarquardt(Damping):
    """K-FAC's Levenberg–Marquardt rule (Martens & Grosse, 2015, §6.5), every `every` steps
    (a number, or a schedule of the step): ρ = (h(θ+δ) − h(θ)) / (gᵀδ + ½δᵀFδ), the loss change
    over the quadratic model's, on the step's batch (a closure called again); the scale shrinks
    by ω = (19/20)^every if ρ > 3/4 and grows by 1/ω if ρ < 1/4, or if the model predicts no
    decrease or the loss is not finite."""

    needs_closure = True

    def __init__(self, group: dict[str, Any], device: torch.device, every: int | Schedule) -> None:
        super().__init__(group, device)
        self.every = every
        self.interval = 1  # `every` at the step last judged: ω's exponent

    def due(self, step: int) -> bool:
        """Each step that is a multiple of `every` at that step."""
        self.interval = int(at_step(self.every, step))
        return step % self.interval == 0

    def adapt(self, change: Tensor, predicted: Tensor) -> None:
        """On tensors (no host sync); ρ of the global batch, so every rank keeps the same γ."""
        mean_across_ranks([change, predicted])
        rho = change / predicted
        omega = (19 / 20) ** self.interval
        descent = predicted < 0
        shrink = descent & (rho > 0.75)
        grow = ~(descent & (rho >= 0.25))  # also when ρ is NaN
        factor = torch.where(shrink, omega, torch.where(grow, 1 / omega, 1.0))
        self.scale.mul_(factor).clamp_(1e-6, 1e6)
        self.last_rho = rho
