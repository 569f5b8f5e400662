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
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp

from fishleg.likelihoods import Likelihood

__all__ = ["curvature_pass", "fisher_quadratic_form", "fisher_vector_product", "model_function"]


@contextlib.contextmanager
def curvature_pass(device: torch.device) -> Iterator[None]:
    """Where the optimizer runs the model for curvature: in float32 (autocast off), on a fork
    of the RNG, so the caller's RNG state is left as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type), torch.autocast(device.type, enabled=False):
        yield


def model_function(model: nn.Module, inputs: Tensor) -> Callable[[dict[str, Tensor]], Tensor]:
    """The model as a function of (some of) its parameters, on fresh copies of its buffers
    (the parameters not given are the module's own)."""
    buffers = dict(model.named_buffers())

    def forward(p: dict[str, Tensor]) -> Tensor:
        fresh = {name: b.clone() for name, b in buffers.items()}
        return functional_call(model, (p, fresh), (inputs,))

    return forward


def fisher_quadratic_form(
    model: nn.Module,
    likelihood: Likelihood,
    inputs: Tensor,
    params: dict[str, Tensor],
    tangents: dict[str, Tensor],
) -> Tensor:
    """vᵀ F v = (1/N) Σ_i (J_i v)ᵀ H_out,i (J_i v) at v = `tangents`: one forward-mode pass,
    no pullback. inputs: (B, ...) → a 0-d tensor. The caller's RNG is left as it was."""
    with curvature_pass(inputs.device):
        outputs, jv = jvp(model_function(model, inputs), (params,), (tangents,))
    return (jv * likelihood.fisher_product(outputs, jv)).sum() / outputs.shape[0]


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
        cpu_state = torch.get_rng_state()
        dev_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        outputs, jv = jvp(forward, (params,), (tangents,))
        torch.set_rng_state(cpu_state)
        if dev_state is not None:
            torch.cuda.set_rng_state(dev_state, device)
        _, pullback = vjp(forward, params)
        hjv = likelihood.fisher_product(outputs, jv) / outputs.shape[0]
        (fv,) = pullback(hjv)
    return fv, outputs
