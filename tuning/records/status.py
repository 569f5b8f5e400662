"""How a trial ended: its statuses, and the one function that reads the status from a trial's
last result. The ledger, the Optuna searcher, MLflow and the progress printer all ask `ending`,
so they cannot disagree about a trial.

A trial's last result says how it ended through two keys the sweep itself adds: `diverged` (the
reason, set by the trial when its loss or optimizer state went non-finite) and `timed_out`
(which time budget stopped it, set by `tuning.sweep.budgets`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["DIVERGED_KEY", "ENDED", "TERMINAL", "TIMED_OUT_KEY", "Ending", "Status", "ending"]

DIVERGED_KEY = "diverged"  # a diverged trial's last result: the reason, as text
TIMED_OUT_KEY = "timed_out"  # a timed-out trial's last result: which budget, as text


class Status(StrEnum):
    """A trial's status in the ledger (`trials.json` stores the value) and MLflow's
    `trial_status` tag. LOST: a trial whose driver was killed as it started (MLflow only)."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"  # ran the full budget
    PRUNED = "PRUNED"  # stopped early by the scheduler
    DIVERGED = "DIVERGED"  # a non-finite loss or optimizer state
    TIMED_OUT = "TIMED_OUT"  # stopped by a time budget
    FAILED = "FAILED"  # an exception (Tune may retry it)
    INTERRUPTED = "INTERRUPTED"  # the sweep stopped around it
    LOST = "LOST"


ENDED = (Status.COMPLETE, Status.PRUNED, Status.DIVERGED, Status.TIMED_OUT)  # never trained again
TERMINAL = (*ENDED, Status.FAILED)


@dataclass(frozen=True)
class Ending:
    """How a trial ended and why (the divergence or the time budget, as text)."""

    status: Status
    reason: str | None = None

    @property
    def has_value(self) -> bool:
        """Whether the searcher is told a value (COMPLETE in Optuna): a full-budget run, or a
        divergence with its worst-case stand-in (see `tuning.sweep.trainable.diverged_report`);
        the others are told PRUNED."""
        return self.status in (Status.COMPLETE, Status.DIVERGED)


def ending(last: Mapping[str, Any] | None, budget: int) -> Ending:
    """How a trial that ended without an error ended, from its last result."""
    last = last or {}
    if last.get(DIVERGED_KEY) is not None:
        return Ending(Status.DIVERGED, str(last[DIVERGED_KEY]))
    if last.get("epoch", 0) >= budget:
        return Ending(Status.COMPLETE)
    if last.get(TIMED_OUT_KEY) is not None:
        return Ending(Status.TIMED_OUT, str(last[TIMED_OUT_KEY]))
    return Ending(Status.PRUNED)
