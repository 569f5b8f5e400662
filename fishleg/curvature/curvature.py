"""The curvature part of FishLeg: Q(λ) ≈ (F + γI)⁻¹ per block, and how λ is learnt — the aux
loss A(λ; u) = ½ uᵀQ(F+γI)Qu − uᵀQu, its Adam loop, when that loop runs and how Q starts.

It knows nothing of how a step uses Q·g (`fishleg.step.rules`) and reads γ from a damping
strategy (`fishleg.step.damping`), so each can change without the others."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fishleg.blocks import Block, BlockBuffer, dot, global_norm
from fishleg.curvature.aux_data import AuxSampler
from fishleg.curvature.fisher import curvature_pass, fisher_vector_product
from fishleg.curvature.kfac import damped_inverse_factors, kronecker_factors
from fishleg.curvature.probes import Probes
from fishleg.distributed import AuxWork, mean_across_ranks
from fishleg.likelihoods import Likelihood
from fishleg.step.damping import Damping
from fishleg.step.schedules import GeometricRamp

__all__ = ["AuxLoss", "Curvature", "QStart", "aux_residual"]


@dataclass(frozen=True)
class QStart:
    """Where Q starts and when it starts again: at K-FAC's estimate (`kfac`) before the first
    parameter step and every `kfac_every` steps after it (0: never again), then
    `warmup_aux_steps` λ updates before step 1."""

    kfac: bool = False
    kfac_every: int = 0
    warmup_aux_steps: int = 0


@dataclass(frozen=True)
class AuxLoss:
    """How ∂A/∂λ is formed from the residual r = (F+γI)Qu − u: divided by ‖Qu‖·‖u‖
    (`normalize`), and met by Q once more (`precondition`: a natural-gradient step for λ).
    `scale_free`: the loss is A at Q's best multiple instead, A_s = min_c A(cQ) = −(uᵀQu)²/(2uᵀQ(F+γI)Qu),
    whose gradient in Qu is c·(c(F+γI)Qu − u) with c = uᵀQu / uᵀQ(F+γI)Qu."""

    normalize: bool = True
    precondition: bool = True
    scale_free: bool = False


def aux_residual(curvature_qu: list[Tensor], qu: Sequence[Tensor], u: Sequence[Tensor], loss: AuxLoss) -> Tensor:
    """The aux loss A(λ; u), and, in place of `curvature_qu` = (F+γI)Qu, the residual the λ
    gradient meets: ∂A/∂(Qu) = (F+γI)Qu − u (scale-free: c(c(F+γI)Qu − u) with Q's best multiple
    c = uᵀQu / uᵀQ(F+γI)Qu), divided by ‖Qu‖·‖u‖ if `loss.normalize`. One tensor per block, each
    in its block's shape; returns a 0-d tensor."""
    tiny = torch.finfo(torch.float32).tiny
    uv = dot(u, qu)
    if loss.scale_free:
        c = uv / dot(qu, curvature_qu).clamp_min(tiny)
        aux_loss = -0.5 * c * uv
        torch._foreach_mul_(curvature_qu, c)
        torch._foreach_sub_(curvature_qu, list(u))
        torch._foreach_mul_(curvature_qu, c)
    else:
        aux_loss = 0.5 * dot(qu, curvature_qu) - uv
        torch._foreach_sub_(curvature_qu, list(u))
    if loss.normalize:
        torch._foreach_div_(curvature_qu, (global_norm(qu) * global_norm(u)).clamp_min(tiny))
    return aux_loss


class Curvature:
    """λ of every block, the optimizer that learns it (`aux_optimizer`, an Adam over all λ, with
    an optional lr ramp), and the aux batches and probes it learns from. schedule: which parameter
    steps get a λ update; aux_sampler: None when the caller runs `update_aux` itself; the probes'
    generator (`probe_rng`, checkpointed) also draws K-FAC's sampled output gradients;
    work: which blocks' λ gradients this rank computes, and how the ranks' shares meet
    (`fishleg.distributed.aux_work`)."""

    def __init__(
        self,
        model: nn.Module,
        likelihood: Likelihood,
        blocks: list[Block],
        damping: Damping,
        schedule: Callable[[int], bool],
        aux_sampler: AuxSampler | None,
        *,
        aux_optimizer: torch.optim.Optimizer,
        aux_lr_ramp: GeometricRamp | None,
        probes: Probes,
        start: QStart,
        aux_loss: AuxLoss,
        work: AuxWork,
        device: torch.device,
    ) -> None:
        self.model = model
        self.likelihood = likelihood
        self.blocks = blocks
        self.damping = damping
        self.schedule = schedule
        self.aux_sampler = aux_sampler
        self.aux_optimizer = aux_optimizer
        self.aux_lr_ramp = aux_lr_ramp
        self.probes = probes
        self.probe_rng = probes.generator
        self.q_start = start
        self.aux_loss = aux_loss
        self.device = device
        self.aux_step_count = 0
        self.missed_updates = 0  # λ updates the schedule asked for with no aux data to run them on
        self.last_aux_loss = torch.full((), float("nan"), device=device)
        self.residual = BlockBuffer()  # (F+γI)Qu − u of the aux step
        self.probe_q = BlockBuffer()  # Q(λ)u for a probe that is not the gradient
        self.flat_params = [p for b in blocks for p in b.params]
        self.work = work

    # ---------------------------------------------------------------- within a step
    def precondition(self, blocks: Sequence[Block]) -> None:
        """Q·g into each block's `qg` from its `grad`."""
        for b in blocks:
            b.structure.apply_cached(b.grad, out=b.qg)

    def before_step(self, blocks: list[Block], step: int) -> None:
        """Before parameter step `step`'s Q·g (with aux data only): at the first, `start`; then
        every `kfac_every` steps, Q again at K-FAC's estimate on a fresh aux batch."""
        if self.aux_sampler is None:
            return
        every = self.q_start.kfac_every
        if step == 1:
            self.start(blocks)
        elif every and (step - 1) % every == 0:
            self.restart_q(self.aux_sampler.draw())

    def start(self, blocks: list[Block]) -> None:
        """Before the first parameter step: Q at K-FAC's estimate (q_init="kfac"), then
        `warmup_aux_steps` λ updates on fresh aux batches, with the probes the aux steps use."""
        if self.q_start.kfac:
            self.initialize_q(self.aux_sampler.draw())
        for _ in range(self.q_start.warmup_aux_steps):
            inputs = self.aux_sampler.draw()
            self._aux_update(inputs, *self.probes.in_step(blocks, self.blocks, reuse_qg=False))

    def maybe_update(self, blocks: list[Block], step: int) -> None:
        """The λ update of parameter step `step` if the schedule has one (after `precondition`,
        whose Q·g it reuses when the probe is the gradient)."""
        if not self.schedule(step):
            return
        if self.aux_sampler is None:
            self._missed(step)
            return
        inputs = self.aux_sampler.draw()
        self._aux_update(inputs, *self.probes.in_step(blocks, self.blocks, reuse_qg=True))

    def _missed(self, step: int) -> None:
        """Warn, once, when a second scheduled λ update passes with no aux data and no
        `update_aux` call yet: Q silently staying at its start is the mistake it catches (the
        first is let pass for loops that call `update_aux` right after `step`)."""
        self.missed_updates += 1
        if self.missed_updates == 2 and self.aux_step_count == 0:
            warnings.warn(
                f"FishLeg: Q(λ) has not been learnt by step {step}: aux_data is 'manual' and update_aux() has "
                "not been called, so Q stays at its start. Call update_aux(inputs) after step(), pass aux_data "
                "(e.g. fishleg.aux_from_loader(train_loader)), or set learn_q=False to keep Q fixed on purpose.",
                stacklevel=6,  # the user's opt.step() (through torch's two step wrappers)
            )

    # ---------------------------------------------------------------- the aux loss
    def aux_gradients(
        self,
        blocks: Sequence[Block],
        inputs: Tensor,
        probes: Sequence[Tensor],
        qu: Sequence[Tensor] | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """∂A/∂λ for each λ of `blocks` and the aux loss A(λ; u).

        probes: one tensor per block, in block shape; qu: Q(λ)u if already known (the
        parameter step's Q·g when u is the gradient). Uses ∂A/∂λ = ∂⟨Q(λ)u, sg(r)⟩/∂λ with
        r = (F+γI)Qu − u, optionally preconditioned by Q and divided by ‖Qu‖·‖u‖. The gradients
        may be the structures' workspaces: use them before the next call. Under data
        parallelism both are means over the ranks' aux batches (`aux_work`: of the gradients,
        or of the residuals, each rank then computing its own blocks' gradients)."""
        if qu is None:
            qu = [b.structure.apply_cached(u, self.probe_q.of(b)) for b, u in zip(blocks, probes)]
        v = list(qu)
        params = {n: p.detach() for b in blocks for n, p in zip(b.names, b.params)}
        tangents = {n: t for b, vb in zip(blocks, v) for n, t in zip(b.names, b.split(vb))}
        fv, _ = fisher_vector_product(self.model, self.likelihood, inputs, params, tangents)
        for b in blocks:
            torch._foreach_copy_(self.residual.views(b), [fv[n] for n in b.names])
        residual = [self.residual.of(b) for b in blocks]
        torch._foreach_addcmul_(residual, v, [self.damping.scale] * len(v), value=self.damping.base)
        self.work.residuals(residual)
        aux_loss = aux_residual(residual, v, probes, self.aux_loss)
        return self.work.gradients(blocks, probes, residual, aux_loss, self.aux_loss.precondition), aux_loss

    def _aux_update(
        self,
        inputs: Tensor,
        blocks: Sequence[Block],
        probes: Sequence[Tensor],
        qu: Sequence[Tensor] | None = None,
    ) -> None:
        """One Adam step on λ of `blocks`."""
        grads, aux_loss = self.aux_gradients(blocks, inputs, probes, qu)
        lambdas = [lam for b in blocks for lam in b.structure.params]
        for lam, g in zip(lambdas, grads):
            lam.grad = g
        self.aux_optimizer.step()
        self.aux_optimizer.zero_grad(set_to_none=True)
        if self.aux_lr_ramp is not None:
            self.aux_lr_ramp.step()
        for b in blocks:
            b.structure.refresh()
        self.last_aux_loss = aux_loss.detach()
        self.aux_step_count += 1

    def update_aux(self, inputs: Tensor, u: Sequence[Tensor] | None = None) -> Tensor:
        """One λ update on a batch of inputs. u: one probe per parameter (in `flat_params`
        order); by default the probes' own (the current gradients, or N(0, I))."""
        probes = self.probes.default(self.blocks) if u is None else self.per_block(u)
        self._aux_update(inputs.to(self.device), self.blocks, probes)
        return self.last_aux_loss

    # ---------------------------------------------------------------- Q itself
    def initialize_q(self, inputs: Tensor) -> list[Block]:
        """Q(λ) of each Kronecker block at K-FAC's damped inverse estimated on a batch of inputs
        (`fishleg.curvature.kfac`), with the current γ; other blocks keep their Q. Returns the blocks set."""
        blocks = [b for b in self.blocks if b.layer is not None and b.structure.kronecker_init]
        factors = kronecker_factors(
            self.model, self.likelihood, inputs.to(self.device), [b.layer for b in blocks], self.probe_rng
        )
        mean_across_ranks([f for found in factors if found is not None for f in found])
        damping = self.damping.gamma()
        set_blocks = []
        for b, found in zip(blocks, factors):
            if found is not None:
                b.structure.set_kronecker(*damped_inverse_factors(*found, damping))
                set_blocks.append(b)
        return set_blocks

    def restart_q(self, inputs: Tensor) -> None:
        """`initialize_q`, with the Adam moments of the λ it replaced cleared (they describe the
        aux loss around the old λ), as if those blocks' aux loop started now."""
        for b in self.initialize_q(inputs):
            for lam in b.structure.params:
                for moment in self.aux_optimizer.state.get(lam, {}).values():
                    moment.zero_()

    def per_block(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """One tensor per parameter → one new tensor per block."""
        if len(tensors) != len(self.flat_params):
            raise ValueError(f"expected one tensor per parameter ({len(self.flat_params)}), got {len(tensors)}")
        it = iter(tensors)
        return [b.join([next(it) for _ in b.params]) for b in self.blocks]

    def apply_q(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """Q(λ) applied to one tensor per parameter."""
        out = []
        for b, block_in in zip(self.blocks, self.per_block(tensors)):
            out.extend(t.clone() for t in b.split(b.structure.apply_cached(block_in, torch.empty_like(block_in))))
        return out

    def is_finite(self) -> Tensor:
        """Whether every λ is finite, as a 0-d bool tensor (no host sync)."""
        return torch.stack([torch.isfinite(lam).all() for b in self.blocks for lam in b.structure.params]).all()

    def check_likelihood(self) -> None:
        """Run the model on two aux inputs and let the likelihood check its outputs' shape, so a
        mismatch is an error at construction, not inside the first aux step."""
        probe = None if self.aux_sampler is None else self.aux_sampler.peek()
        if probe is None:
            return
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        with torch.no_grad(), curvature_pass(self.device):
            outputs = torch.func.functional_call(self.model, buffers, (probe,))
        self.likelihood.check_outputs(outputs)

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """λ, its Adam state, the counters and the generators (keys kept from the first
        checkpoints)."""
        return {
            "lambda": [lam.detach().clone() for b in self.blocks for lam in b.structure.params],
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "aux_step_count": self.aux_step_count,
            "last_aux_loss": self.last_aux_loss.clone(),
            "probe_rng": self.probe_rng.get_state(),
            "aux_sampler": None if self.aux_sampler is None else self.aux_sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; the aux_lr ramp resumes at the saved λ update."""
        with torch.no_grad():
            lambdas = [lam for b in self.blocks for lam in b.structure.params]
            if len(lambdas) != len(state["lambda"]):
                raise ValueError("FishLeg.load_state_dict: λ count differs (another model or q_structure?)")
            torch._foreach_copy_(lambdas, [t.to(self.device) for t in state["lambda"]])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        for b in self.blocks:
            b.structure.refresh()
        self.aux_step_count = state["aux_step_count"]
        if self.aux_lr_ramp is not None:
            self.aux_lr_ramp.last_epoch = self.aux_step_count
        self.last_aux_loss = state["last_aux_loss"].to(self.device)
        self.probe_rng.set_state(state["probe_rng"].cpu())  # a loop may have moved it (accelerate does)
        if self.aux_sampler is not None and state["aux_sampler"] is not None:
            self.aux_sampler.load_state_dict(state["aux_sampler"])
