"""Exact Fisher-vector products F v = (1/N) Σ_i J_iᵀ H_out,i J_i v with torch.func, over the
N rows of the model's output: the rows the likelihood's NLL averages over (N = B, the batch,
unless the model flattens more into rows, e.g. a language model's (B·T, vocab) logits), so F
is the Gauss–Newton matrix of the loss being minimised, whatever the output layout.

F is the generalised Gauss–Newton matrix, which equals the (expected) Fisher for the
exponential-family likelihoods used here: deterministic and float32-safe, with no sampled
labels or finite differences.  The model is called functionally on copies of its buffers,
so BatchNorm running statistics are left as they were; the RNG state is restored between
the two forward passes (dropout masks agree) and after them (the caller's RNG is untouched).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp

from fishleg.likelihoods import Likelihood

if TYPE_CHECKING:
    from fishleg.curvature.aux_data import AuxSampler

__all__ = ["curvature_pass", "fisher_gram", "fisher_quadratic_form", "fisher_vector_product", "model_function"]


@contextlib.contextmanager
def curvature_pass(device: torch.device) -> Iterator[None]:
    """Where the optimizer runs the model for curvature: in float32 (autocast off), on a fork
    of the RNG, so the caller's RNG state is left as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type), torch.autocast(device.type, enabled=False):
        yield


def _rng_replay(device: torch.device) -> Callable[[], None]:
    """A function that sets the RNG back to its state now: each pass over the model then
    draws the same dropout masks."""
    cpu_state = torch.get_rng_state()
    dev_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def replay() -> None:
        torch.set_rng_state(cpu_state)
        if dev_state is not None:
            torch.cuda.set_rng_state(dev_state, device)

    return replay


def model_function(model: nn.Module, inputs: Tensor) -> Callable[[dict[str, Tensor]], Tensor]:
    """The model as a function of (some of) its parameters, on fresh copies of its buffers
    (the parameters not given are the module's own)."""
    buffers = dict(model.named_buffers())

    def forward(p: dict[str, Tensor]) -> Tensor:
        fresh = {name: b.clone() for name, b in buffers.items()}
        return functional_call(model, (p, fresh), (inputs,))

    return forward


def fisher_gram(
    model: nn.Module,
    likelihood: Likelihood,
    inputs: Tensor,
    params: dict[str, Tensor],
    directions: Sequence[dict[str, Tensor]],
) -> Tensor:
    """The k×k matrix vᵢᵀ F vⱼ of k directions (each a dict like `params`): one forward-mode
    pass per direction, no pullback, so F is never formed. inputs: (B, ...) → (k, k). The
    caller's RNG is left as it was."""
    forward = model_function(model, inputs)
    with curvature_pass(inputs.device):
        replay = _rng_replay(inputs.device)
        jvs = []
        for tangents in directions:
            replay()
            outputs, jv = jvp(forward, (params,), (tangents,))
            jvs.append(jv)
        hjvs = [likelihood.fisher_product(outputs, jv) for jv in jvs]
    return torch.stack([torch.stack([(a * hb).sum() for hb in hjvs]) for a in jvs]) / outputs.shape[0]


def fisher_quadratic_form(
    model: nn.Module,
    likelihood: Likelihood,
    inputs: Tensor,
    params: dict[str, Tensor],
    tangents: dict[str, Tensor],
) -> Tensor:
    """vᵀ F v at v = `tangents`: `fisher_gram` of one direction. inputs: (B, ...) → a 0-d
    tensor."""
    return fisher_gram(model, likelihood, inputs, params, [tangents])[0, 0]


def fisher_vector_product(
    model: nn.Module,
    likelihood: Likelihood,
    inputs: Tensor,
    params: dict[str, Tensor],
    tangents: dict[str, Tensor],
) -> tuple[dict[str, Tensor], Tensor]:
    """F v for the parameters in `params` at v = `tangents` (same keys and shapes).

    inputs: (B, ...). Returns (F v as a dict like `params`, the model outputs (B, ...)).
    Parameters of `model` not in `params` are held fixed."""
    forward = model_function(model, inputs)
    device = inputs.device
    with curvature_pass(device):
        replay = _rng_replay(device)
        outputs, jv = jvp(forward, (params,), (tangents,))
        replay()
        _, pullback = vjp(forward, params)
        hjv = likelihood.fisher_product(outputs, jv) / outputs.shape[0]
        (fv,) = pullback(hjv)
    return fv, outputs


@dataclass(frozen=True)
class AuxFisher:
    """The model's Fisher on a fresh aux batch per call: all a step rule or a damping rule
    needs of the curvature (the model, the likelihood, where aux batches come from), so they
    never reach into `Curvature`."""

    model: nn.Module
    likelihood: Likelihood
    sampler: AuxSampler

    def gram(self, params: dict[str, Tensor], directions: Sequence[dict[str, Tensor]]) -> Tensor:
        """`fisher_gram` of `directions` at `params`, on the next aux batch: (k, k)."""
        return fisher_gram(self.model, self.likelihood, self.sampler.draw(), params, directions)

    def quadratic_form(self, params: dict[str, Tensor], tangents: dict[str, Tensor]) -> Tensor:
        """`fisher_quadratic_form` of `tangents` at `params`, on the next aux batch: 0-d."""
        return fisher_quadratic_form(self.model, self.likelihood, self.sampler.draw(), params, tangents)
