"""Dense references built explicitly from the factors and from autograd Jacobians."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev

from fishleg.blocks import Block
from fishleg.likelihoods import BernoulliLikelihood, CategoricalLikelihood, GaussianLikelihood, Likelihood
from fishleg.structures import DiagQ, KronDiagQ, KronQ, KronSumQ, QStructure


def dense_q(structure: QStructure, params: list[Tensor] | None = None) -> Tensor:
    """Q(λ) as a dense matrix acting on the block flattened row-major (differentiable)."""
    p = structure.params if params is None else params
    if isinstance(structure, DiagQ):
        return torch.diag((p[0] * p[0]).flatten())
    if isinstance(structure, KronQ):
        # kron: λ's lower triangles with the strictly-lower entries doubled
        left, right = p[0].tril() + p[0].tril(-1), p[1].tril() + p[1].tril(-1)
        return torch.kron(left @ left.T, right @ right.T)
    if isinstance(structure, KronDiagQ):
        left, right, outer, inner = p
        k = torch.kron(left, right)
        a = torch.diag(outer.flatten())
        return a @ k @ torch.diag((inner * inner).flatten()) @ k.T @ a
    if isinstance(structure, KronSumQ):
        return sum(torch.kron(lf @ lf.T, rf @ rf.T) for lf, rf in zip(p[0], p[1]))
    raise TypeError(type(structure))


def output_fisher(likelihood: Likelihood, out: Tensor) -> Tensor:
    """H_out per example, (B, d, d), for outputs (B, d)."""
    b, d = out.shape
    if isinstance(likelihood, GaussianLikelihood):
        return torch.eye(d).expand(b, d, d) * torch.exp(-2 * likelihood.log_sigma)
    if isinstance(likelihood, BernoulliLikelihood):
        p = torch.sigmoid(out)
        return torch.diag_embed(p * (1 - p))
    if isinstance(likelihood, CategoricalLikelihood):
        p = torch.softmax(out, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    raise TypeError(type(likelihood))


def dense_fisher(
    model: nn.Module, likelihood: Likelihood, x: Tensor, blocks: list[Block], at: Tensor | None = None
) -> Tensor:
    """F = (1/N) Σ_i J_iᵀ H_i J_i over the N output rows and the blocks' parameters, flattened
    block by block; at the parameters `at` (flattened likewise) or the model's own."""
    sizes = [b.structure.shape for b in blocks]

    def f(flat: Tensor) -> Tensor:
        params, offset = {}, 0
        for b, shape in zip(blocks, sizes):
            n = torch.Size(shape).numel()
            block = flat[offset : offset + n].reshape(shape)
            offset += n
            params.update(zip(b.names, b.split(block)))
        return functional_call(model, params, (x,))

    flat0 = torch.cat([b.join([p.detach() for p in b.params]).flatten() for b in blocks]) if at is None else at
    jac = jacrev(f)(flat0)  # (B, d, P)
    out = f(flat0).detach()
    h = output_fisher(likelihood, out)
    return torch.einsum("bdp,bde,beq->pq", jac, h, jac) / out.shape[0]
