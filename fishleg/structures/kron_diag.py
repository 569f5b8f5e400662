"""Kronecker with diagonal scalings: Q = diag(a) (L ⊗ R) diag(d²) (L ⊗ R)ᵀ diag(a).

Acting on a block: Q U = A ⊙ (L (D² ⊙ (Lᵀ (A ⊙ U) R)) Rᵀ).  The outer diagonal A lets Q
rescale single weights the Kronecker factors cannot; the inner D² gives the eigenvalues of
the Kronecker eigenbasis their own scale (as in EKFAC)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from typing_extensions import override

from fishleg.structures.base import QSpec, QStructure, register_structure


def kron_diag_apply(left: Tensor, right: Tensor, outer: Tensor, inner: Tensor, u: Tensor) -> Tensor:
    """A ⊙ (L (D² ⊙ (Lᵀ (A ⊙ U) R)) Rᵀ). left (m, m), right (n, n), outer/inner/u (m, n) → (m, n)."""
    core = (left.T @ (outer * u)) @ right
    return outer * ((left @ (inner * inner * core)) @ right.T)


@register_structure("kron_diag")
class KronDiagQ(QStructure):
    """`kron` with diagonal scalings inside and outside the Kronecker product (see the module docstring)."""

    kronecker_init = True

    @override
    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        m, n = shape
        return [
            torch.eye(m, device=device),
            torch.eye(n, device=device),
            torch.full(shape, math.sqrt(spec.init_scale), device=device),
            torch.ones(shape, device=device),
        ]

    @override
    def apply(self, u: Tensor) -> Tensor:
        return kron_diag_apply(*self.params, u)

    @override
    def set_kronecker(self, left: Tensor, right: Tensor) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.params[:2], [left, right])
            for scale in self.params[2:]:
                scale.fill_(1.0)
        self.refresh()

    @override
    def allocate(self) -> None:
        left, right, outer, inner = self.params
        self._left, self._right, self._outer = left.detach(), right.detach(), outer.detach()
        self._inner2 = torch.empty_like(inner, requires_grad=False)
        self._tmp = torch.empty(self.shape, device=left.device)

    @override
    def refresh(self) -> None:
        inner = self.params[3].detach()
        torch.mul(inner, inner, out=self._inner2)

    @override
    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        tmp = self._tmp
        torch.mul(self._outer, u, out=out)
        torch.mm(self._left.T, out, out=tmp)
        torch.mm(tmp, self._right, out=out)
        out.mul_(self._inner2)
        torch.mm(self._left, out, out=tmp)
        torch.mm(tmp, self._right.T, out=out)
        return out.mul_(self._outer)
