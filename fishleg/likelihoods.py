"""Likelihoods p(y | f(x)): the negative log-likelihood and the Fisher in output space.

The Fisher of the model is the generalised Gauss–Newton matrix Jᵀ H_out J, where H_out is
the Fisher of the likelihood with respect to the model's outputs.  Each likelihood supplies
that product in closed form, so Fisher-vector products need no sampled labels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from fishleg.registry import Registry

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "LIKELIHOODS",
    "Likelihood",
    "register_likelihood",
]

LIKELIHOODS: Registry[str, type[Likelihood]] = Registry("likelihood")
register_likelihood = LIKELIHOODS.register
"""Class decorator: `@register_likelihood("name")` lets `FishLeg(model, "name")` build it."""


class Likelihood(nn.Module, ABC):
    """A likelihood over model outputs of shape (B, ...): per-example NLLs are summed over
    the non-batch dimensions and averaged over the batch."""

    @abstractmethod
    def nll(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean negative log-likelihood over the batch; outputs (B, ...) → scalar."""

    @abstractmethod
    def fisher_product(self, outputs: Tensor, v: Tensor) -> Tensor:
        """H_out(outputs) v per example, summed (not averaged) over the batch.

        outputs, v: (B, ...) → (B, ...). No gradient flows into `outputs`."""

    def sample_output_gradient(self, outputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random r, shaped like `outputs`, with E[r rᵀ] = H_out per example: the gradient of
        the NLL in the outputs at a target drawn from the model's own distribution. K-FAC's
        output-gradient factor is estimated from these (`q_init="kfac"`). No gradient flows
        into `outputs`."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot sample targets from the model, so q_init='kfac' is not available with it; "
            "define sample_output_gradient or use q_init='identity'"
        )

    def check_outputs(self, outputs: Tensor) -> None:
        """Raise ValueError if the model's outputs cannot parameterise this likelihood."""
        if outputs.dim() < 1:
            raise ValueError(
                f"{type(self).__name__}: model outputs must have a batch dimension, got shape {tuple(outputs.shape)}"
            )


@register_likelihood("gaussian")
class GaussianLikelihood(Likelihood):
    """y ~ N(f(x), σ²I). σ is fixed unless `learn_sigma`; a learnt σ is a parameter of this
    module (train it with any first-order optimizer); the Fisher treats it as a constant."""

    def __init__(self, sigma: float = 1.0, learn_sigma: bool = False) -> None:
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"GaussianLikelihood: sigma must be > 0, got {sigma!r}")
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    @override
    def nll(self, outputs: Tensor, targets: Tensor) -> Tensor:
        var = torch.exp(2 * self.log_sigma)
        sq = (outputs - targets).pow(2).flatten(1).sum(1)
        dim = outputs[0].numel()
        return (0.5 * sq / var + dim * (self.log_sigma + 0.5 * math.log(2 * math.pi))).mean()

    @override
    def fisher_product(self, outputs: Tensor, v: Tensor) -> Tensor:
        return v * torch.exp(-2 * self.log_sigma.detach())

    @override
    def sample_output_gradient(self, outputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(outputs.shape, generator=generator, device=outputs.device, dtype=outputs.dtype)
        return noise * torch.exp(-self.log_sigma.detach())


@register_likelihood("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli outputs parameterised by logits; targets in [0, 1]."""

    @override
    def nll(self, outputs: Tensor, targets: Tensor) -> Tensor:
        per = F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype), reduction="none")
        return per.flatten(1).sum(1).mean()

    @override
    def fisher_product(self, outputs: Tensor, v: Tensor) -> Tensor:
        p = torch.sigmoid(outputs.detach())
        return p * (1 - p) * v

    @override
    def sample_output_gradient(self, outputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = torch.sigmoid(outputs.detach())
        return p - torch.bernoulli(p, generator=generator)


@register_likelihood("categorical")
class CategoricalLikelihood(Likelihood):
    """Softmax over dimension 1 of the logits; targets are integer class indices."""

    @override
    def nll(self, outputs: Tensor, targets: Tensor) -> Tensor:
        per = F.cross_entropy(outputs, targets.long(), reduction="none")
        return per.reshape(outputs.shape[0], -1).sum(1).mean()

    @override
    def fisher_product(self, outputs: Tensor, v: Tensor) -> Tensor:
        p = torch.softmax(outputs.detach(), dim=1)
        pv = p * v
        return pv - p * pv.sum(dim=1, keepdim=True)

    @override
    def sample_output_gradient(self, outputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = torch.softmax(outputs.detach(), dim=1)
        rows = p.movedim(1, -1).reshape(-1, p.shape[1])
        drawn = torch.multinomial(rows, 1, generator=generator)
        onehot = torch.zeros_like(rows).scatter_(1, drawn, 1.0)
        return p - onehot.reshape(p.movedim(1, -1).shape).movedim(-1, 1)

    @override
    def check_outputs(self, outputs: Tensor) -> None:
        if outputs.dim() < 2 or outputs.shape[1] < 2:
            raise ValueError(
                "CategoricalLikelihood: model outputs must be logits of shape (batch, classes, ...)"
                f" with at least 2 classes, got shape {tuple(outputs.shape)}"
            )
