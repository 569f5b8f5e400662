"""The Q(λ) family interface: one instance approximates (F_ℓ + γI)⁻¹ for one block U_ℓ."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from fishleg.registry import Registry

__all__ = ["QSpec", "QStructure", "STRUCTURES", "build_structure", "register_structure", "workspace"]


@dataclass(frozen=True)
class QSpec:
    """What every structure may read when it is built. Q starts at `init_scale`·I; a
    structure that draws random initial factors draws them from `generator` (a CPU
    generator: the optimizer's own, never torch's global one)."""

    init_scale: float = 1.0
    rank: int = 2
    generator: torch.Generator | None = None


class QStructure(ABC):
    """Q(λ) on one block of shape `shape` (a matrix (out, in+1) for structured layers).

    λ are float32 leaf tensors (`params`) trained by the auxiliary Adam loop.  `apply` is
    differentiable in λ (the aux step needs ∂⟨Q(λ)u, r⟩/∂λ); `apply_cached` is the cheap
    no-grad product used by the parameter step, from quantities `refresh` precomputes.
    """

    matrix_only: ClassVar[bool] = True
    kronecker_init: ClassVar[bool] = False
    """Whether `set_kronecker` can start Q at K-FAC's estimate (`q_init="kfac"`)."""
    takes_rank: ClassVar[bool] = False
    """Whether the structure reads `QSpec.rank` (its number of terms, `kron_sum_rank`)."""

    def __init__(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> None:
        if self.matrix_only and len(shape) != 2:
            raise ValueError(f"{type(self).__name__} needs a 2-D block, got shape {shape}")
        self.shape = shape
        # Contiguous: the fused Adam of the λ updates reads a gradient in its parameter's memory
        # order, so a transposed λ (e.g. from a QR) with a contiguous gradient gets it transposed.
        self.params: list[Tensor] = [p.contiguous().requires_grad_() for p in self.init_params(shape, spec, device)]
        self.allocate()
        self.refresh()

    @abstractmethod
    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        """λ at initialisation, chosen so that Q(λ) = spec.init_scale · I."""

    @abstractmethod
    def apply(self, u: Tensor) -> Tensor:
        """Q(λ) u, differentiable in λ. u: `shape` → `shape`."""

    def set_kronecker(self, left: Tensor, right: Tensor) -> None:
        """Set λ so that Q(λ) = L Lᵀ ⊗ R Rᵀ, then refresh. left (m, m), right (n, n): lower
        triangular. Only structures with `kronecker_init` implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no Kronecker form to start from")

    def allocate(self) -> None:
        """Allocate, once, the cache and workspace that `refresh` and `apply_cached` fill."""

    @abstractmethod
    def refresh(self) -> None:
        """Recompute, in place, the cache `apply_cached` reads; call after λ changes."""

    @abstractmethod
    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        """Q(λ) u into `out` without autograd. u, out: `shape`; returns `out`."""

    def lambda_grad(self, u: Tensor, r: Tensor, precondition: bool = False) -> list[Tensor]:
        """∂⟨Q(λ)u, r̃⟩/∂λ, one tensor per λ, with r̃ = Q(λ)r held constant if `precondition`
        (a natural-gradient step for λ), else r̃ = r. u, r: `shape`."""
        return self.product_grad(u, self.preconditioned(r) if precondition else r)

    def preconditioned(self, r: Tensor) -> Tensor:
        """Q(λ) r into a new tensor (structures with a workspace for it override this)."""
        return self.apply_cached(r, torch.empty_like(r))

    def product_grad(self, u: Tensor, r: Tensor) -> list[Tensor]:
        """∂⟨Q(λ)u, r⟩/∂λ by autograd through `apply`; structures with a cheaper closed form
        override this. u, r: `shape`."""
        with torch.enable_grad():
            return list(torch.autograd.grad((self.apply(u) * r).sum(), self.params))


ROW_ALIGN = 16
"""Rows of a workspace start at a multiple of this many floats (64 bytes): matrix products whose
rows start unaligned (a layer's block is (out, in + 1), the bias column included) run slower
(measured in docs/benchmarks.md, "Cost as layers widen"). Matrices narrower than `ALIGN_FROM` stay
contiguous: their products are cheap, and keep the summation order they had."""
ALIGN_FROM = 128


def workspace(rows: int, cols: int, device: torch.device) -> Tensor:
    """An uninitialised (rows, cols) float32 matrix whose rows start aligned (`ROW_ALIGN`): a
    view of a wider one, so it is not contiguous; it is meant for `out=` of products, not for
    λ or its gradients (fused Adam reads those in their parameter's memory order)."""
    if cols < ALIGN_FROM or cols % ROW_ALIGN == 0:
        return torch.empty(rows, cols, device=device)
    return torch.empty(rows, -(-cols // ROW_ALIGN) * ROW_ALIGN, device=device)[:, :cols]


STRUCTURES: Registry[str, type[QStructure]] = Registry("q_structure")
register_structure = STRUCTURES.register
"""Class decorator: `@register_structure("name")` makes a QStructure selectable as `q_structure="name"`."""


def build_structure(name: str, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> QStructure:
    """A new Q(λ) of family `name` on a block of `shape`, equal to spec.init_scale·I."""
    return STRUCTURES[name](shape, spec, device)
