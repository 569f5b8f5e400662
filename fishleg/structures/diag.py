"""Diagonal Q: Q u = D ⊙ D ⊙ u, the structure for norm layers and unknown parameters."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from typing_extensions import override

from fishleg.structures.base import QSpec, QStructure, register_structure


def diag_apply(d: Tensor, u: Tensor) -> Tensor:
    """D ⊙ D ⊙ u. d, u: any shape (equal) → same shape."""
    return d * d * u


@register_structure("diag")
class DiagQ(QStructure):
    """Q u = D ⊙ D ⊙ u: one λ per entry of the block, for any block shape."""

    matrix_only = False

    @override
    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        return [torch.full(shape, math.sqrt(spec.init_scale), device=device)]

    @override
    def apply(self, u: Tensor) -> Tensor:
        return diag_apply(self.params[0], u)

    @override
    def allocate(self) -> None:
        self._d2 = torch.empty_like(self.params[0], requires_grad=False)

    @override
    def refresh(self) -> None:
        d = self.params[0].detach()
        torch.mul(d, d, out=self._d2)

    @override
    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        return torch.mul(self._d2, u, out=out)
