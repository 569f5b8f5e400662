"""Hyperparameters that vary with the step, one protocol for all: `lr`, `damping` and
`update_aux_every` each take a number or a `Schedule`, a callable of the parameter step
(from 1) that returns the value for that step (kfac-pytorch's convention). The aux_lr ramp is a
torch LR scheduler on the aux optimizer, where torch's own schedulers also plug in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["AuxSteps", "GeometricRamp", "Schedule", "at_step", "never"]

Schedule = Callable[[int], float]
"""Parameter step number (from 1) → the hyperparameter's value at that step."""


def at_step(value: float | Schedule, step: int) -> float:
    """The value of a number-or-schedule hyperparameter at parameter step `step` (from 1)."""
    return value(step) if callable(value) else value


def never(step: int) -> bool:
    """No step gets a λ update (`learn_q=False`)."""
    return False


@dataclass(frozen=True)
class AuxSteps:
    """Which parameter steps get a λ update: each of the first `dense` (a denser start while Q
    is far from (F + γI)⁻¹), then each step that is a multiple of `every` at that step
    (`update_aux_every` and `dense_aux_steps` as one rule)."""

    every: int | Schedule
    dense: int = 0

    def __call__(self, step: int) -> bool:
        """Whether step `step` (from 1) gets a λ update."""
        return step <= self.dense or step % int(at_step(self.every, step)) == 0


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
