"""How a step uses Q·g: momentum on Q·g (FishLeg's own), or the damped quadratic model's step
(K-FAC's), chosen by `step_rule` from `STEP_RULES`. A rule moves the parameters and, when
asked, returns the quadratic model's predicted change gᵀδ + ½δᵀFδ (adaptive damping's
denominator). A new rule is a `StepRule` subclass registered under its name, nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fishleg.blocks import Block, BlockBuffer, dot
from fishleg.curvature.fisher import AuxFisher
from fishleg.distributed import mean_across_ranks
from fishleg.registry import Registry
from fishleg.step.damping import Damping
from fishleg.step.grafting import Graft, block_norms

__all__ = [
    "STEP_RULES",
    "MomentumStep",
    "QuadraticStep",
    "StepContext",
    "StepRule",
    "bound_steps",
    "minimise_quadratic",
]


@dataclass
class StepContext:
    """What a rule reads for one step: the blocks with gradients, their parameters, Q·g and
    gradient views (flattened in block order), each parameter's buffer of the last step
    (`momentum_buffer`) and its whole optimizer state, each parameter's block (its index in
    `blocks`, a tensor on the parameters' device), the parameter group's settings, the
    damping (γ), and the Fisher on aux batches (None without aux data)."""

    blocks: list[Block]
    params: list[Tensor]
    qgs: list[Tensor]
    grads: list[Tensor]
    buffers: list[Tensor]
    states: list[dict[str, Any]]
    block_of: Tensor
    group: dict[str, Any]
    damping: Damping
    fisher: AuxFisher | None
    first: bool


def _decay(ctx: StepContext) -> None:
    """θ ← θ(1 − η·wd): decoupled weight decay."""
    wd = ctx.group["weight_decay"]
    if wd != 0:
        torch._foreach_mul_(ctx.params, 1 - ctx.group["lr"] * wd)


class StepRule(ABC):
    """Moves the parameters given Q·g, built with the graft (None without one). needs_aux_data:
    whether it runs curvature on aux batches; uses_beta: whether `beta` has a role (the config
    refuses another beta otherwise); takes_graft: whether a graft may set its step lengths."""

    needs_aux_data = False
    uses_beta = True
    takes_graft = True

    def __init__(self, graft: Graft | None = None) -> None:
        self.graft = graft

    @abstractmethod
    def apply(self, ctx: StepContext, predict: bool) -> Tensor | None:
        """Take the step; with `predict`, return gᵀδ + ½δᵀFδ for it (F on an aux batch), a
        0-d tensor (no host sync)."""


STEP_RULES: Registry[str, type[StepRule]] = Registry("step_rule")


@STEP_RULES.register("momentum")
class MomentumStep(StepRule):
    """θ ← θ − η(m + wd·θ), m ← βm + (1−β)Q·g; with a graft, each block's m is rescaled to the
    length of the grafted method's direction a on that block: θ ← θ − η(‖a‖/‖m‖)m."""

    def __init__(self, graft: Graft | None = None) -> None:
        super().__init__(graft)
        self.delta = BlockBuffer()  # the parameters before a step minus after it (−δ), for its prediction

    def apply(self, ctx: StepContext, predict: bool) -> Tensor | None:
        """The momentum step; its prediction measures δ from the parameters before and after."""
        if predict:
            torch._foreach_copy_([v for b in ctx.blocks for v in self.delta.views(b)], ctx.params)
        lr, beta = ctx.group["lr"], ctx.group["beta"]
        _decay(ctx)
        torch._foreach_mul_(ctx.buffers, beta)
        torch._foreach_add_(ctx.buffers, ctx.qgs, alpha=1 - beta)
        if self.graft is None:
            torch._foreach_add_(ctx.params, ctx.buffers, alpha=-lr)
        else:
            torch._foreach_addcmul_(ctx.params, ctx.buffers, self._lengths(ctx), value=-lr)
        return _predicted_change(ctx, self.delta) if predict else None

    def _lengths(self, ctx: StepContext) -> list[Tensor]:
        """‖a‖/‖m‖ of each parameter's block, as 0-d tensors (no host sync)."""
        directions, scale = self.graft.directions(ctx.grads, ctx.states)
        n = len(ctx.blocks)
        tiny = torch.finfo(torch.float32).tiny
        lengths = block_norms(directions, ctx.block_of, n).mul_(scale)
        ratio = lengths / block_norms(ctx.buffers, ctx.block_of, n).clamp_min(tiny)
        return list(ratio[ctx.block_of].unbind())


def _predicted_change(ctx: StepContext, delta: BlockBuffer) -> Tensor:
    """gᵀδ + ½δᵀFδ for the step just taken, F on an aux batch (`delta` holds the parameters
    from before it, and −δ after this)."""
    deltas = [delta.of(b) for b in ctx.blocks]
    torch._foreach_sub_([v for b in ctx.blocks for v in delta.views(b)], ctx.params)
    params = {n: p.detach() for b in ctx.blocks for n, p in zip(b.names, b.params)}
    tangents = {n: t for b in ctx.blocks for n, t in zip(b.names, delta.views(b))}
    return 0.5 * ctx.fisher.quadratic_form(params, tangents) - dot([b.grad for b in ctx.blocks], deltas)


@STEP_RULES.register("quadratic")
class QuadraticStep(StepRule):
    """K-FAC's step (Martens & Grosse, 2015, §7): θ ← θ + δ with δ = η(a·Q·g + m·δ₀), where
    (a, m) minimise the damped model gᵀδ + ½δᵀ(F + γI)δ over the plane of Q·g and the last
    step δ₀ (kept in the momentum buffers), F on an aux batch; η = 1 takes the model's
    minimiser. Its momentum is m, so `beta` has no role here, and its length is the model's,
    so no graft."""

    needs_aux_data = True
    uses_beta = False
    takes_graft = False

    def apply(self, ctx: StepContext, predict: bool) -> Tensor | None:
        """The model's step; it always knows its prediction: gᵀδ + ½δᵀFδ at the chosen (a, m)."""
        names = [n for b in ctx.blocks for n in b.names]
        last = ctx.buffers
        directions = [ctx.qgs] if ctx.first else [ctx.qgs, last]  # no last step yet: a line search
        curvature = ctx.fisher.gram(
            {n: p.detach() for n, p in zip(names, ctx.params)}, [dict(zip(names, d)) for d in directions]
        )
        mean_across_ranks([curvature])
        overlap = torch.stack([torch.stack([dot(a, b) for b in directions]) for a in directions])
        slope = torch.stack([dot(ctx.grads, d) for d in directions])
        coefficients = ctx.group["lr"] * minimise_quadratic(curvature + ctx.damping.gamma() * overlap, slope)
        if len(directions) == 1:
            torch._foreach_zero_(last)
        else:
            torch._foreach_mul_(last, coefficients[1])
        torch._foreach_addcmul_(last, ctx.qgs, [coefficients[0]] * len(ctx.qgs))
        _decay(ctx)
        torch._foreach_add_(ctx.params, last)
        return slope @ coefficients + 0.5 * coefficients @ curvature @ coefficients


def minimise_quadratic(matrix: Tensor, linear: Tensor) -> Tensor:
    """argmin over x of bᵀx + ½xᵀCx for k = 1 or 2 directions, −C⁻¹b, in closed form (no
    solver, no host sync); where C is near-singular (the directions nearly parallel) the
    line search along the first direction alone. matrix C (k, k), linear b (k,) → (k,)."""
    tiny = torch.finfo(matrix.dtype).tiny
    line = -linear[0] / matrix[0, 0].clamp_min(tiny)
    if matrix.shape[0] == 1:
        return line.reshape(1)
    (c00, c01), (c10, c11) = matrix
    det = c00 * c11 - c01 * c10
    solved = torch.stack([c01 * linear[1] - c11 * linear[0], c10 * linear[0] - c00 * linear[1]]) / det.clamp_min(tiny)
    fallback = torch.stack([line, torch.zeros_like(line)])
    return torch.where(det > 1e-6 * c00 * c11, solved, fallback)


def bound_steps(blocks: Sequence[Block], gamma: Tensor) -> None:
    """Q·g ← Q·g · min(1, ‖g‖ / (γ‖Q·g‖)) per block (`bound_step`): (F + γI)⁻¹ stretches no
    vector by more than 1/γ, so a longer Q·g overshoots. On tensors: no host sync."""
    limit = torch.stack(torch._foreach_norm([b.grad for b in blocks])) / gamma
    length = torch.stack(torch._foreach_norm([b.qg for b in blocks])).clamp_min(torch.finfo(torch.float32).tiny)
    torch._foreach_mul_([b.qg for b in blocks], list((limit / length).clamp_max(1.0).unbind()))
