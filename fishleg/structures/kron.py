"""Kronecker Q: Q U = L Lᵀ U R Rᵀ, i.e. (LLᵀ ⊗ RRᵀ) acting on U flattened row-major."""

from __future__ import annotations

import torch
from torch import Tensor

from fishleg.structures.base import QSpec, QStructure, register_structure


def kron_apply(left: Tensor, right: Tensor, u: Tensor) -> Tensor:
    """L Lᵀ U R Rᵀ without forming the Grams (cheaper to differentiate).

    left (m, m), right (n, n), u (m, n) → (m, n)."""
    return left @ ((left.T @ u) @ right) @ right.T


@register_structure("kron")
class KronQ(QStructure):
    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        m, n = shape
        c = spec.init_scale**0.25
        return [c * torch.eye(m, device=device), c * torch.eye(n, device=device)]

    def apply(self, u: Tensor) -> Tensor:
        return kron_apply(self.params[0], self.params[1], u)

    def allocate(self) -> None:
        left, right = self.params
        self._left_gram = torch.empty_like(left, requires_grad=False)
        self._right_gram = torch.empty_like(right, requires_grad=False)
        self._tmp = torch.empty(self.shape, device=left.device)

    def refresh(self) -> None:
        with torch.no_grad():
            left, right = self.params
            torch.mm(left, left.T, out=self._left_gram)
            torch.mm(right, right.T, out=self._right_gram)

    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        torch.mm(self._left_gram, u, out=self._tmp)
        return torch.mm(self._tmp, self._right_gram, out=out)
