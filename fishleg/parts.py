"""How FishLeg's parts are built from its config, and what the config asks of the aux data: each
part gets only its own options (the curvature never sees the config). A part with state to
checkpoint is `Stateful`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import nn

from fishleg.blocks import Block
from fishleg.config import FishLegConfig
from fishleg.curvature.aux_data import AuxData, AuxSampler
from fishleg.curvature.curvature import AuxLoss, Curvature, QStart
from fishleg.curvature.probes import PROBES
from fishleg.distributed import aux_work
from fishleg.likelihoods import Likelihood
from fishleg.step.damping import Damping, FixedDamping, LevenbergMarquardt
from fishleg.step.grafting import GRAFTS, Graft
from fishleg.step.partner import Partner
from fishleg.step.rules import StepRule
from fishleg.step.schedules import AuxSteps, GeometricRamp, never

__all__ = [
    "MANUAL",
    "Stateful",
    "build_curvature",
    "build_damping",
    "build_graft",
    "build_partner",
    "build_sampler",
]


class Stateful(Protocol):
    """A part whose state FishLeg's checkpoint holds: its own keys, distinct from every other
    part's, in one section of the optimizer's state_dict (the keys of the first checkpoints)."""

    def state_dict(self) -> dict[str, Any]:
        """The part's state, by its own keys."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the part's keys from a checkpoint's FishLeg section (it holds every part's)."""
        ...


def _needs_aux_data(config: FishLegConfig, rule: StepRule, damping: Damping) -> list[str]:
    """The options `config` turns on that run curvature on aux batches, by name."""
    needs = {
        "adaptive_damping": damping.needs_closure,
        f"step_rule {config.step_rule!r}": rule.needs_aux_data,
        "q_init": config.q_init == "kfac",
        "warmup_aux_steps": config.warmup_aux_steps > 0,
    }
    return [name for name, needed in needs.items() if needed]


MANUAL = "manual"  # aux_data when the training loop calls update_aux(inputs) itself


def _is_manual(aux_data: AuxData | str | None, config: FishLegConfig) -> bool:
    """Whether λ's updates are the caller's (`aux_data="manual"`); refuses an aux loop that
    nothing would feed, which would leave Q at its start without a word."""
    if isinstance(aux_data, str):
        if aux_data != MANUAL:
            raise ValueError(f"FishLeg: aux_data {aux_data!r}: the only text it takes is {MANUAL!r}")
        return True
    if aux_data is None and config.learn_q:
        raise ValueError(
            "FishLeg: no aux_data, but the aux loop (learn_q) learns Q(λ) from aux batches every "
            f"update_aux_every steps, so Q would stay at its start. Pass aux_data: a tensor of inputs, a "
            "Dataset, or fishleg.aux_from_loader(train_loader) (in Lightning: aux_from_loader("
            "self.train_dataloader()), or aux_from_loader(self.trainer.datamodule) with a LightningDataModule); "
            f"or aux_data={MANUAL!r} when your loop calls update_aux(inputs) itself; or learn_q=False to keep Q "
            "where q_init puts it"
        )
    return False


def build_sampler(
    config: FishLegConfig,
    aux_data: AuxData | str | None,
    rule: StepRule,
    damping: Damping,
    device: torch.device,
    seed: int,
) -> AuxSampler | None:
    """Where aux batches come from: None with `aux_data="manual"` (the loop calls update_aux)
    or without aux data; refuses a config whose parts need aux batches that none would feed."""
    if _is_manual(aux_data, config):
        aux_data = None
    needs = _needs_aux_data(config, rule, damping)
    if needs and aux_data is None:
        raise ValueError(
            f"FishLeg: {', '.join(needs)} needs aux_data (it runs the model's curvature on aux batches); "
            "pass aux_data (a tensor of inputs, a Dataset, or fishleg.aux_from_loader(train_loader) in a "
            "Lightning module, a Trainer or a script), or leave the option at its default"
        )
    return None if aux_data is None else AuxSampler(aux_data, config.aux_batch_size, device, seed)


def build_damping(config: FishLegConfig, group: dict[str, Any], device: torch.device) -> Damping:
    """γ's strategy on FishLeg's group: Levenberg–Marquardt with `adaptive_damping`, else the
    group's damping as it is."""
    if config.adaptive_damping:
        return LevenbergMarquardt(group, device, config.update_aux_every)
    return FixedDamping(group, device)


def build_curvature(
    config: FishLegConfig,
    model: nn.Module,
    likelihood: Likelihood,
    blocks: list[Block],
    damping: Damping,
    sampler: AuxSampler | None,
    seed: int,
    device: torch.device,
) -> Curvature:
    """The curvature part, given only the aux loop's own options."""
    lambdas = [lam for b in blocks for lam in b.structure.params]
    # fused: one kernel over all λ (λ has ~(out² + in²) entries per layer)
    aux_optimizer = torch.optim.Adam(lambdas, lr=config.aux_lr, betas=config.aux_betas, eps=config.aux_eps, fused=True)
    ramp = None
    if config.aux_lr_start is not None:
        ramp = GeometricRamp(aux_optimizer, config.aux_lr_start, config.aux_lr_decay_steps)
    return Curvature(
        model,
        likelihood,
        blocks,
        damping,
        AuxSteps(config.update_aux_every, config.dense_aux_steps) if config.learn_q else never,
        sampler,
        aux_optimizer=aux_optimizer,
        aux_lr_ramp=ramp,
        probes=PROBES[config.u_sampling](torch.Generator(device=device).manual_seed(seed + 1)),
        start=QStart(config.q_init == "kfac", config.kfac_every, config.warmup_aux_steps),
        aux_loss=AuxLoss(config.normalize_aux, config.precondition_aux, config.scale_free_aux),
        work=aux_work(config.aux_work, blocks),
        device=device,
    )


def build_graft(config: FishLegConfig) -> Graft | None:
    """The graft's first-order method with its own options; None without a graft."""
    if config.graft == "none":
        return None
    return GRAFTS[config.graft](config.beta, config.graft_beta2, config.graft_eps)


def build_partner(config: FishLegConfig, params: list[torch.nn.Parameter], lead: dict[str, Any]) -> Partner | None:
    """AdamW on the parameters given to the partner, following FishLeg's group (`lead`) in lr
    and weight decay, so FishLeg's scheduler drives both; None without a partner."""
    if not params:
        return None
    adamw = torch.optim.AdamW(params, lr=lead["lr"], betas=config.partner_betas, weight_decay=lead["weight_decay"])
    return Partner(adamw, lead, follows=("lr", "weight_decay"))
