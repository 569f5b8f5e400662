"""When the aux loop runs, and its learning rate over time: callables of the step and a torch
LR scheduler, so that a user's own schedule slots in where the built-in one does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["AuxSchedule", "EveryK", "GeometricRamp", "never"]

AuxSchedule = Callable[[int], bool]
"""Parameter step number (from 1) → whether that step gets a λ update."""


def never(step: int) -> bool:
    """No step gets a λ update (`learn_q=False`)."""
    return False


@dataclass(frozen=True)
class EveryK:
    """Every `every`-th step, and each of the first `dense` steps (a denser start while Q is
    far from (F + γI)⁻¹): `update_aux_every` and `dense_aux_steps` as one schedule."""

    every: int
    dense: int = 0

    def __call__(self, step: int) -> bool:
        """Whether step `step` (from 1) gets a λ update."""
        return step <= self.dense or step % self.every == 0


class GeometricRamp(LRScheduler):
    """lr moves geometrically from `start` to the group's own lr over `steps` scheduler steps,
    then stays there (`aux_lr_start`: long λ strides while Q is far from its target). Step it
    once per λ update."""

    def __init__(self, optimizer: torch.optim.Optimizer, start: float, steps: int) -> None:
        self.start = start
        self.steps = steps
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        """start^(1−d) · lr^d with d = min(updates done / steps, 1)."""
        done = min(self.last_epoch / self.steps, 1.0)
        return [self.start ** (1 - done) * base**done for base in self.base_lrs]
