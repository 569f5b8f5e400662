"""Sum of Kronecker products: Q U = Σ_k L_k L_kᵀ U R_k R_kᵀ (k = 1..rank).

Each extra term can capture curvature a single Kronecker product misses.  Factors start as
distinct random orthogonal matrices scaled so that Q = s·I exactly: identical factors would
receive identical gradients and the sum would never leave rank one."""

from __future__ import annotations

import torch
from torch import Tensor
from typing_extensions import override

from fishleg.structures.base import QSpec, QStructure, register_structure


def kron_sum_apply(left: Tensor, right: Tensor, u: Tensor) -> Tensor:
    """Σ_k L_k L_kᵀ U R_k R_kᵀ. left (r, m, m), right (r, n, n), u (m, n) → (m, n)."""
    core = (left.transpose(1, 2) @ u) @ right
    return ((left @ core) @ right.transpose(1, 2)).sum(0)


def kron_sum_lambda_grad(
    left: Tensor, right: Tensor, left_grams: Tensor, right_grams: Tensor, u: Tensor, r: Tensor
) -> tuple[Tensor, Tensor]:
    """The Kronecker closed form of kron.py for every term at once, with full (not
    triangular) factors: ((s + sᵀ) L, (t + tᵀ) R).

    left, left_grams (k, m, m); right, right_grams (k, n, n); u, r (m, n)."""
    s = r @ (u @ right_grams).transpose(1, 2)
    t = (left_grams @ u).transpose(1, 2) @ r
    return (s + s.transpose(1, 2)) @ left, (t + t.transpose(1, 2)) @ right


def random_orthogonal(rank: int, size: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """`rank` orthogonal matrices (rank, size, size); the first is the identity. Drawn on the
    CPU from `generator` (torch's global generator only if None)."""
    q, _ = torch.linalg.qr(torch.randn(rank, size, size, generator=generator))
    q[0] = torch.eye(size)
    return q.to(device)


@register_structure("kron_sum")
class KronSumQ(QStructure):
    """Σ_k L_k L_kᵀ U R_k R_kᵀ with `rank` terms of full factors."""

    takes_rank = True

    @override
    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        m, n = shape
        c = (spec.init_scale / spec.rank) ** 0.25
        return [
            c * random_orthogonal(spec.rank, m, device, spec.generator),
            c * random_orthogonal(spec.rank, n, device, spec.generator),
        ]

    @override
    def apply(self, u: Tensor) -> Tensor:
        return kron_sum_apply(self.params[0], self.params[1], u)

    @override
    def allocate(self) -> None:
        left, right = self.params
        self._left_grams = torch.empty_like(left, requires_grad=False)
        self._right_grams = torch.empty_like(right, requires_grad=False)
        self._tmp = torch.empty((2, left.shape[0], *self.shape), device=left.device)

    @override
    def refresh(self) -> None:
        with torch.no_grad():
            left, right = self.params
            torch.bmm(left, left.transpose(1, 2), out=self._left_grams)
            torch.bmm(right, right.transpose(1, 2), out=self._right_grams)

    @override
    def product_grad(self, u: Tensor, r: Tensor) -> list[Tensor]:
        left, right = (p.detach() for p in self.params)
        return list(kron_sum_lambda_grad(left, right, self._left_grams, self._right_grams, u, r))

    @override
    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        left_u, left_u_right = self._tmp[0], self._tmp[1]
        torch.matmul(self._left_grams, u, out=left_u)
        torch.bmm(left_u, self._right_grams, out=left_u_right)
        return torch.sum(left_u_right, dim=0, out=out)
