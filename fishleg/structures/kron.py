"""Kronecker Q: Q U = L Lᵀ U R Rᵀ, i.e. (LLᵀ ⊗ RRᵀ) acting on U flattened row-major.

L and R are lower-triangular (Cholesky factors). That is the same family of Q as with full
factors, since every positive-definite factor has one, without the redundancy L → LO for
orthogonal O. The aux step's cubic products (the Gram refresh and the λ gradient) then skip
the factors' zero blocks: they cost about half as many FLOPs.

λ holds each factor with its strictly-lower entries halved (`factor` doubles them back).
Adam moves each λ entry by about `aux_lr` per step. With full factors an off-diagonal entry
of LLᵀ moves through both L_ij and L_ji; doubling keeps that step size, the one the
reference defaults were tuned with. Without it, untuned FishLeg on the MNIST autoencoder
ended 9 % worse (`benchmarks/quality.py`: test loss 116.8 vs 107.0)."""

from __future__ import annotations

import torch
from torch import Tensor
from typing_extensions import override

from fishleg.structures.base import QSpec, QStructure, register_structure, workspace

MIN_BLOCK = 128
"""Triangular products split in halves down to this size. Below it the saved FLOPs are few
and small products run slower (cut-offs from 64 to 400 timed alike on a 2-core CPU)."""


def factor(lam: Tensor) -> Tensor:
    """The lower-triangular factor λ stands for: its lower triangle, strictly-lower entries
    doubled (differentiable). lam (k, k) → (k, k)."""
    return lam.tril() + lam.tril(-1)


def factor_into(lam: Tensor, out: Tensor) -> Tensor:
    """`factor` into `out` (which may be `lam`), for λ that is already lower-triangular. The
    map scales each entry, so it is its own adjoint: it also takes a gradient in the factor to
    the gradient in λ. lam, out (k, k)."""
    torch.mul(lam, 2.0, out=out).diagonal().mul_(0.5)
    return out


def kron_apply(left: Tensor, right: Tensor, u: Tensor) -> Tensor:
    """L Lᵀ U R Rᵀ without forming the Grams (cheaper to differentiate).
    left (m, m), right (n, n), u (m, n) → (m, n)."""
    return left @ ((left.T @ u) @ right) @ right.T


def gram(x: Tensor, out: Tensor) -> Tensor:
    """x xᵀ into `out`, the upper-right block copied from the lower-left: ¾ of a plain mm's
    FLOPs. x (m, k), out (m, m)."""
    h = x.shape[0] // 2
    top, bottom = x[:h], x[h:]
    torch.mm(top, top.T, out=out[:h, :h])
    torch.mm(bottom, top.T, out=out[h:, :h])
    torch.mm(bottom, bottom.T, out=out[h:, h:])
    out[:h, h:].copy_(out[h:, :h].T)
    return out


def tril_gram(lower: Tensor, out: Tensor) -> Tensor:
    """L Lᵀ for lower-triangular L into `out`, skipping L's zero upper-right block: with
    L = [[A, 0], [B, C]], LLᵀ = [[AAᵀ, ·], [BAᵀ, BBᵀ + CCᵀ]], AAᵀ recursively. About 36 % of
    a plain mm's FLOPs. lower, out (m, m)."""
    m = lower.shape[0]
    if m < MIN_BLOCK:
        return torch.mm(lower, lower.T, out=out)
    h = m // 2
    tril_gram(lower[:h, :h], out[:h, :h])
    torch.mm(lower[h:, :h], lower[:h, :h].T, out=out[h:, :h])
    gram(lower[h:], out[h:, h:])
    out[:h, h:].copy_(out[h:, :h].T)
    return out


def times_lower(x: Tensor, lower: Tensor, out: Tensor, lower_part_only: bool = False) -> Tensor:
    """X L for lower-triangular L = [[A, 0], [B, C]], skipping its zero block:
    X L = [X₁A + X₂B, X₂C], with X₁A and X₂C recursively. With `lower_part_only` (X square),
    X₂C is formed for X's lower rows only: `out` is right on and below the diagonal, and some
    entries above it are left as they were. x (k, m), lower (m, m), out (k, m)."""
    m = lower.shape[0]
    if m < MIN_BLOCK:
        return torch.mm(x, lower, out=out)
    h = m // 2
    times_lower(x[:, :h], lower[:h, :h], out[:, :h])
    out[:, :h].addmm_(x[:, h:], lower[h:, :h])
    rows = slice(h, None) if lower_part_only else slice(None)
    times_lower(x[rows, h:], lower[h:, h:], out[rows, h:], lower_part_only)
    return out


def sym_times_tril(s: Tensor, lower: Tensor, sym: Tensor, out: Tensor) -> Tensor:
    """tril((s + sᵀ) L) into `out` (which may be `s`), with `sym` as workspace: the gradient
    of ⟨L Lᵀ, s⟩ in a lower-triangular L. About 47 % of a plain mm's FLOPs. All (k, k)."""
    torch.add(s, s.T, out=sym)
    return times_lower(sym, lower, out, lower_part_only=True).tril_()


@register_structure("kron")
class KronQ(QStructure):
    """Keeps the half-product of the last `apply_cached` (LLᵀU or URRᵀ, whichever costs more),
    so that the λ gradient for a probe u whose Q·u the parameter step already formed (u = the
    gradient) skips that product: the closed form needs both LLᵀU and URRᵀ."""

    kronecker_init = True

    @override
    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        m, n = shape
        c = spec.init_scale**0.25
        return [c * torch.eye(m, device=device), c * torch.eye(n, device=device)]

    @override
    def apply(self, u: Tensor) -> Tensor:
        return kron_apply(factor(self.params[0]), factor(self.params[1]), u)

    @override
    def set_kronecker(self, left: Tensor, right: Tensor) -> None:
        with torch.no_grad():
            for lam, lower in zip(self.params, (left, right)):
                lam.copy_(lower.tril() - 0.5 * lower.tril(-1))  # `factor` doubles the strictly-lower part back
        self.refresh()

    @override
    def allocate(self) -> None:
        left, right = self.params
        m, n = self.shape
        device = left.device
        self._keep_left = m >= n  # LLᵀU costs 2m²n, URRᵀ 2mn²: keep the dearer one
        self._left = workspace(m, m, device)
        self._right = workspace(n, n, device)
        self._left_gram = workspace(m, m, device)
        self._right_gram = workspace(n, n, device)
        self._left_u = workspace(m, n, device)
        self._u_right = workspace(m, n, device)
        self._r_half = workspace(m, n, device)
        self._r_full = workspace(m, n, device)
        self._left_work = (workspace(m, m, device), workspace(m, m, device), torch.empty(m, m, device=device))
        self._right_work = (workspace(n, n, device), workspace(n, n, device), torch.empty(n, n, device=device))
        self._kept_for: tuple[Tensor, int] | None = None

    def refresh(self) -> None:
        """Also zeroes λ's upper triangles, which λ set from outside (a checkpoint, a test)
        may carry; Adam keeps them zero, as their gradient is zero."""
        with torch.no_grad():
            left, right = self.params
            tril_gram(factor_into(left.tril_(), self._left), self._left_gram)
            tril_gram(factor_into(right.tril_(), self._right), self._right_gram)
        self._kept_for = None

    @override
    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        if self._keep_left:
            torch.mm(torch.mm(self._left_gram, u, out=self._left_u), self._right_gram, out=out)
        else:
            torch.mm(self._left_gram, torch.mm(u, self._right_gram, out=self._u_right), out=out)
        # inference tensors keep no version counter, so a kept product could not be validated
        self._kept_for = None if u.is_inference() else (u, u._version)
        return out

    def _half_products(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(LLᵀU, URRᵀ), reusing the one `apply_cached` kept if u is unchanged since then."""
        kept = self._kept_for is not None and self._kept_for[0] is u and self._kept_for[1] == u._version
        if not (kept and self._keep_left):
            torch.mm(self._left_gram, u, out=self._left_u)
        if not (kept and not self._keep_left):
            torch.mm(u, self._right_gram, out=self._u_right)
        return self._left_u, self._u_right

    @override
    def preconditioned(self, r: Tensor) -> Tensor:
        return torch.mm(self._left_gram, torch.mm(r, self._right_gram, out=self._r_half), out=self._r_full)

    def product_grad(self, u: Tensor, r: Tensor) -> list[Tensor]:
        """The closed form of ∂⟨LLᵀ U RRᵀ, r⟩/∂λ from the cached Grams: tril((s + sᵀ) L) and
        tril((t + tᵀ) R) with s = r (URRᵀ)ᵀ, t = (LLᵀU)ᵀ r, strictly-lower entries doubled
        (the chain rule through `factor`). The returned tensors are workspaces, valid until
        the next call."""
        left_u, u_right = self._half_products(u)
        s, s_sym, s_grad = self._left_work
        t, t_sym, t_grad = self._right_work
        torch.mm(r, u_right.T, out=s)
        torch.mm(left_u.T, r, out=t)
        grads = [sym_times_tril(s, self._left, s_sym, out=s_grad), sym_times_tril(t, self._right, t_sym, out=t_grad)]
        return [factor_into(g, g) for g in grads]
