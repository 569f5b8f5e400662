"""The sweep's own record of its trials, `trials.json` in the sweep folder: one row per
trial with its status, parameters and per-epoch metrics. Plain data and files, no Ray: `best`
and `report` read it without starting anything; `tuning.sweep.callbacks` keeps it in step with Tune.

Choosing reads it too: trials stopped early report a truncated metric, so the best is chosen
among trials that ran the full budget; if none did, among those that ran longest."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from tuning.errors import UserError
from tuning.records.files import write_atomically
from tuning.records.status import Status

__all__ = [
    "Best",
    "Ledger",
    "TrialRecord",
    "format_counts",
    "format_params",
    "format_value",
    "rank_trials",
    "select_best",
    "trials_table",
]


@dataclass
class TrialRecord:
    """status: RUNNING, COMPLETE (ran the full budget), PRUNED (stopped early by the
    scheduler), DIVERGED (a non-finite loss or optimizer state; `history` holds the finite
    epochs, `error` the reason), TIMED_OUT (stopped by a time budget, `error` says which),
    FAILED (an exception), INTERRUPTED (sweep stopped).
    `test`: the test metrics, only on the trial whose config the sweep exported.
    `checkpoint`: the folder name, in the trial's Tune folder, of its last checkpoint."""

    trial_id: str
    params: dict[str, Any]
    status: str = Status.RUNNING
    epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    mlflow_run_id: str | None = None
    node_ids: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    ended: float | None = None
    test: dict[str, float] | None = None
    checkpoint: str | None = None

    def value(self, metric: str) -> float | None:
        """The trial's last reported value of `metric`, if any."""
        return self.history[-1].get(metric) if self.history else None


class Ledger:
    """trials.json: one TrialRecord per trial, read on creation and written with `save`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, TrialRecord] = {}
        if path.exists():
            try:
                rows = json.loads(path.read_text())
                self.records = {row["trial_id"]: TrialRecord(**row) for row in rows}
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise UserError(
                    f"{path}: the trial ledger is damaged ({type(exc).__name__}: {exc}); nothing was changed. "
                    "Restore it from a copy, or start the sweep again under another --name."
                ) from None

    def save(self) -> None:
        """Write atomically, so a crash never leaves half a ledger."""
        write_atomically(self.path, json.dumps([asdict(r) for r in self.records.values()], indent=1))

    def counts(self) -> dict[str, int]:
        """{status: number of trials}."""
        out: dict[str, int] = {}
        for r in self.records.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out


def format_counts(counts: dict[str, int]) -> str:
    """{'COMPLETE': 7, 'PRUNED': 5} → '7 complete, 5 pruned'."""
    return ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))


def format_value(value: Any) -> str:
    """A metric or parameter value as the tables show it (4 significant digits for floats)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_params(params: dict[str, Any]) -> str:
    """Sampled parameters as `lr=0.05 damping=0.5` (the last part of each dotted name)."""
    return " ".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in params.items())


def trials_table(records: Sequence[TrialRecord], metric: str, limit: int | None = None) -> Table:
    """A table of trials (best first if ranked), with the reason where one failed or diverged."""
    table = Table(title=None, show_lines=False)
    for col in ("trial", "status", "epochs", metric, "params"):
        table.add_column(Text(col), overflow="fold")
    for rec in list(records)[:limit]:
        value = rec.value(metric)
        explained = rec.status in (Status.FAILED, Status.DIVERGED, Status.TIMED_OUT)
        note = rec.error if explained else format_params(rec.params)
        cells = (rec.trial_id, rec.status, str(rec.epochs), "" if value is None else format_value(value), note or "")
        table.add_row(*map(Text, cells))  # Text: the user's values are not rich markup
    return table


@dataclass(frozen=True)
class Best:
    """The chosen trial, the value it was chosen by, and whether it ran the full budget."""

    record: TrialRecord
    value: float
    full_budget: bool


def rank_trials(records: list[TrialRecord], metric: str, mode: str, min_epochs: int = 0) -> list[TrialRecord]:
    """Trials with a value that ran at least `min_epochs`, longest-trained first, then best
    metric first."""
    scored = [
        r
        for r in records
        if r.value(metric) is not None and r.status not in (Status.FAILED, Status.DIVERGED) and r.epochs >= min_epochs
    ]
    sign = 1.0 if mode == "min" else -1.0
    return sorted(scored, key=lambda r: (-r.epochs, sign * r.value(metric)))


def select_best(records: list[TrialRecord], metric: str, mode: str, budget: int) -> Best | None:
    """The best trial among those that trained longest (the full budget if any did)."""
    ranked = rank_trials(records, metric, mode)
    if not ranked:
        return None
    top = ranked[0]
    return Best(top, float(top.value(metric)), top.epochs >= budget)
