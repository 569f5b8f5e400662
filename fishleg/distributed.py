"""FishLeg under data parallelism (`torch.distributed`, e.g. with DistributedDataParallel).

DDP averages the gradients, so every rank sees the same g; but each rank draws its own
auxiliary batch, so the curvature FishLeg measures on it (the Fisher-vector products of the
aux loss, the quadratic forms of adaptive damping and the quadratic step, K-FAC's factors)
differs between ranks, and so would λ and the step. Averaging those measurements across
ranks, as DDP averages gradients, makes every rank's update identical, and each rank's aux
batch counts: with equal local batches the mean of the ranks' Fisher products is the Fisher
product on their union. On one process (no process group, or one rank) nothing changes."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor, nn

if TYPE_CHECKING:
    from fishleg.blocks import Block

__all__ = [
    "AuxWork",
    "EveryBlock",
    "SplitBlocks",
    "assign_owners",
    "aux_work",
    "broadcast_seed",
    "mean_across_ranks",
    "rank",
    "sum_across_ranks",
    "unwrap",
    "world_size",
]


def world_size() -> int:
    """Ranks in the default process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group; 0 without one."""
    return dist.get_rank() if world_size() > 1 else 0


def mean_across_ranks(tensors: Sequence[Tensor]) -> None:
    """In place, each tensor ← its mean over the ranks, in one all-reduce (no-op on one process).
    Every rank gets the same values, so replicas fed these stay bitwise identical."""
    _all_reduce(tensors, mean=True)


def sum_across_ranks(tensors: Sequence[Tensor]) -> None:
    """In place, each tensor ← its sum over the ranks, in one all-reduce (no-op on one process);
    a value that is nonzero on one rank only arrives exactly (x + 0 = x)."""
    _all_reduce(tensors, mean=False)


def _all_reduce(tensors: Sequence[Tensor], mean: bool) -> None:
    ranks = world_size()
    if ranks == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    if mean:
        flat.div_(ranks)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def assign_owners(costs: Sequence[float], ranks: int) -> list[int]:
    """Each item's rank, balancing the summed cost: the costliest first, each to the rank with
    the least so far (the same answer on every rank: no communication)."""
    load = [0.0] * ranks
    owners = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        owner = min(range(ranks), key=lambda r: (load[r], r))
        owners[i] = owner
        load[owner] += costs[i]
    return owners


def broadcast_seed(seed: int, device: torch.device) -> int:
    """Rank 0's seed on every rank (no-op on one process): a seed derived from each process's
    own torch.initial_seed() would give each rank different aux batches and probes."""
    if world_size() == 1:
        return seed
    carrier = torch.tensor([seed], dtype=torch.int64, device=device)
    dist.broadcast(carrier, src=0)
    return int(carrier.item())


def unwrap(model: nn.Module) -> nn.Module:
    """The module a DistributedDataParallel (or DataParallel) wrapper holds: FishLeg builds its
    blocks and runs its curvature passes on the model itself (same parameters, no gradient
    hooks, no `module.` prefix in names), so its state is the same wrapped or not."""
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


class AuxWork(ABC):
    """Which blocks' λ gradients this rank computes in an aux step, and how the ranks' shares
    meet, so that λ stays identical on every rank (`aux_work`)."""

    def residuals(self, residual: list[Tensor]) -> None:
        """Called on (F+γI)Qu of every block, before the aux loss is formed from it."""

    @abstractmethod
    def gradients(
        self, blocks: Sequence[Block], probes: Sequence[Tensor], residual: Sequence[Tensor], aux_loss: Tensor,
        precondition: bool,
    ) -> list[Tensor]:  # fmt: skip
        """∂A/∂λ of every λ of `blocks`, the same on every rank (`aux_loss` too, in place)."""


class EveryBlock(AuxWork):
    """Every rank computes every block's λ gradient on its own aux batch; the gradients (and the
    aux loss) are then averaged, so each rank's batch counts (`aux_work="all"`, and one process)."""

    def gradients(
        self, blocks: Sequence[Block], probes: Sequence[Tensor], residual: Sequence[Tensor], aux_loss: Tensor,
        precondition: bool,
    ) -> list[Tensor]:  # fmt: skip
        """Every block's gradient, averaged across the ranks with the aux loss in one all-reduce."""
        grads = [
            g
            for b, u, r in zip(blocks, probes, residual)
            for g in b.structure.lambda_grad(u, r, precondition=precondition)
        ]
        mean_across_ranks([*grads, aux_loss])
        return grads


class SplitBlocks(AuxWork):
    """The residuals are averaged (u, Q and λ agree across ranks; only F differs), then each rank
    computes the λ gradients of its share of the blocks, balanced by a cost model of the
    structures' products (a block of shape (m, n) costs m·n·(m + n)), and the shares are summed
    (`aux_work="split"` on several ranks)."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        costs = [math.prod(b.structure.shape) * sum(b.structure.shape) for b in blocks]
        me = rank()
        self.owned = {id(b) for b, owner in zip(blocks, assign_owners(costs, world_size())) if owner == me}
        # the zero gradients this rank contributes for the blocks it does not own, allocated once
        self.unowned = {
            id(b): [torch.zeros_like(lam) for lam in b.structure.params] for b in blocks if id(b) not in self.owned
        }

    def residuals(self, residual: list[Tensor]) -> None:
        """The mean residual over the ranks: the one on the union of their aux batches."""
        mean_across_ranks(residual)

    def gradients(
        self, blocks: Sequence[Block], probes: Sequence[Tensor], residual: Sequence[Tensor], aux_loss: Tensor,
        precondition: bool,
    ) -> list[Tensor]:  # fmt: skip
        """This rank's blocks' gradients and zeros for the others, summed across the ranks: each
        block's gradient arrives from its owner, exactly."""
        grads = []
        for b, u, r in zip(blocks, probes, residual):
            if id(b) in self.owned:
                grads.extend(b.structure.lambda_grad(u, r, precondition=precondition))
            else:
                zeros = self.unowned[id(b)]
                torch._foreach_zero_(zeros)
                grads.extend(zeros)
        sum_across_ranks(grads)
        return grads


def aux_work(name: str, blocks: Sequence[Block]) -> AuxWork:
    """The work assignment `aux_work` names; "split" on one process is the same as "all"."""
    return SplitBlocks(blocks) if name == "split" and world_size() > 1 else EveryBlock()
