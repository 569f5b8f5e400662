"""Learning-rate grafting (Agarwal et al., 2020, "Disentangling adaptive gradient methods from
learning rates"; distributed_shampoo's `grafting_config`): each block's step keeps FishLeg's
direction and takes its length from a first-order method run beside it on the same gradients.
So an lr and schedule tuned for that method carry over: swap the optimizer, keep the lr."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fishleg.registry import Registry

__all__ = ["GRAFTS", "Graft", "block_norms"]


class Graft(ABC):
    """A first-order method's step direction a per parameter (its step alone is lr·a), from
    state it keeps in the optimizer's per-parameter state under `graft_<name>` keys."""

    buffers: tuple[str, ...] = ()

    def __init__(self, beta1: float, beta2: float, eps: float) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.steps = 0

    def init_state(self, state: dict[str, Any], param: Tensor) -> None:
        """Zeroed buffers for one parameter."""
        for name in self.buffers:
            state[f"graft_{name}"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def directions(self, grads: Sequence[Tensor], states: Sequence[dict[str, Any]]) -> tuple[list[Tensor], float]:
        """Update the method's state with this step's gradients; its direction a per parameter
        as (tensors, c) with a = c · tensors (a scalar factor is cheaper on the norms than on
        every element)."""
        self.steps += 1
        return self._directions(list(grads), {n: [s[f"graft_{n}"] for s in states] for n in self.buffers})

    def state_dict(self) -> dict[str, Any]:
        """The step count of its bias corrections (its buffers are in the per-parameter state)."""
        return {"graft_steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.steps = state["graft_steps"]

    @abstractmethod
    def _directions(self, grads: list[Tensor], buffers: dict[str, list[Tensor]]) -> tuple[list[Tensor], float]: ...


GRAFTS: Registry[str, type[Graft]] = Registry("graft")


@GRAFTS.register("sgd")
class SGDGraft(Graft):
    """a = g: the step has the gradient's length per block."""

    def _directions(self, grads: list[Tensor], buffers: dict[str, list[Tensor]]) -> tuple[list[Tensor], float]:
        return grads, 1.0


@GRAFTS.register("adam")
class AdamGraft(Graft):
    """a = m̂ / (√v̂ + ε), torch.optim.Adam's direction with betas (beta1, beta2), computed as
    (√c₂ / c₁) · m / (√v + ε√c₂) with cᵢ = 1 − βᵢᵗ the bias corrections."""

    buffers = ("exp_avg", "exp_avg_sq")

    def _directions(self, grads: list[Tensor], buffers: dict[str, list[Tensor]]) -> tuple[list[Tensor], float]:
        exp_avg, exp_avg_sq = buffers["exp_avg"], buffers["exp_avg_sq"]
        torch._foreach_lerp_(exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - self.beta2)
        root_c2 = (1 - self.beta2**self.steps) ** 0.5
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_add_(denom, self.eps * root_c2)
        torch._foreach_reciprocal_(denom)
        torch._foreach_mul_(denom, exp_avg)
        return denom, root_c2 / (1 - self.beta1**self.steps)


@GRAFTS.register("rmsprop")
class RMSpropGraft(Graft):
    """a = g / (√v + ε), v ← β₂v + (1−β₂)g²: torch.optim.RMSprop's direction (alpha = beta2)."""

    buffers = ("square_avg",)

    def _directions(self, grads: list[Tensor], buffers: dict[str, list[Tensor]]) -> tuple[list[Tensor], float]:
        square_avg = buffers["square_avg"]
        torch._foreach_mul_(square_avg, self.beta2)
        torch._foreach_addcmul_(square_avg, grads, grads, value=1 - self.beta2)
        return _divided(grads, square_avg, self.eps), 1.0


@GRAFTS.register("adagrad")
class AdagradGraft(Graft):
    """a = g / (√s + ε), s ← s + g²: torch.optim.Adagrad's direction."""

    buffers = ("sum",)

    def _directions(self, grads: list[Tensor], buffers: dict[str, list[Tensor]]) -> tuple[list[Tensor], float]:
        total = buffers["sum"]
        torch._foreach_addcmul_(total, grads, grads, value=1.0)
        return _divided(grads, total, self.eps), 1.0


def _divided(grads: list[Tensor], squares: list[Tensor], eps: float) -> list[Tensor]:
    """g / (√s + ε) into one new tensor per parameter."""
    denom = torch._foreach_sqrt(squares)
    torch._foreach_add_(denom, eps)
    torch._foreach_reciprocal_(denom)
    torch._foreach_mul_(denom, grads)
    return denom


def block_norms(tensors: Sequence[Tensor], block_of: Tensor, n_blocks: int) -> Tensor:
    """‖·‖ per block of per-parameter tensors; block_of (n_params,) holds each tensor's block
    → (n_blocks,). On tensors: no host sync."""
    squares = torch.stack(torch._foreach_norm(list(tensors))).square()
    return torch.zeros(n_blocks, device=squares.device, dtype=squares.dtype).index_add_(0, block_of, squares).sqrt()
