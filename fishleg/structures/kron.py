"""Kronecker Q: Q U = L Lᵀ U R Rᵀ, i.e. (LLᵀ ⊗ RRᵀ) acting on U flattened row-major."""

from __future__ import annotations

import torch
from torch import Tensor

from fishleg.structures.base import QSpec, QStructure, register_structure


def kron_apply(left: Tensor, right: Tensor, u: Tensor) -> Tensor:
    """L Lᵀ U R Rᵀ without forming the Grams (cheaper to differentiate).

    left (m, m), right (n, n), u (m, n) → (m, n)."""
    return left @ ((left.T @ u) @ right) @ right.T


def kron_lambda_grad(
    left: Tensor, right: Tensor, left_gram: Tensor, right_gram: Tensor, u: Tensor, r: Tensor
) -> tuple[Tensor, Tensor]:
    """∂⟨L Lᵀ U R Rᵀ, r⟩/∂(L, R) = ((r Mᵀ + M rᵀ) L, (Nᵀ r + rᵀ N) R), M = U RRᵀ, N = LLᵀ U.

    left, left_gram (m, m); right, right_gram (n, n); u, r (m, n). Reuses the cached Grams,
    which costs far less than differentiating the four-product chain."""
    s = r @ (u @ right_gram).T
    t = (left_gram @ u).T @ r
    return (s + s.T) @ left, (t + t.T) @ right


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

    def lambda_grad(self, u: Tensor, r: Tensor) -> list[Tensor]:
        left, right = (p.detach() for p in self.params)
        return list(kron_lambda_grad(left, right, self._left_gram, self._right_gram, u, r))

    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        torch.mm(self._left_gram, u, out=self._tmp)
        return torch.mm(self._tmp, self._right_gram, out=out)
