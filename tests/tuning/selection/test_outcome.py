"""How a sweep ended, from its ledger alone: finished, interrupted (resume continues it), ended
by its time budget (finished), or stopped because every trial failed alike."""

import pytest

from tuning.records.folder import SweepFolder
from tuning.records.ledger import TrialRecord
from tuning.records.status import Status
from tuning.selection.outcome import SweepEnding, sweep_ending
from tuning.sweep.spec import SweepSpec


def spec(num_samples: int, time_budget_s: float | None = None) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "workload": {"name": "digits_classifier"},
            "optimizer": {"name": "fishleg"},
            "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
            "search": {"num_samples": num_samples, "time_budget_s": time_budget_s},
        }
    )


def records(*statuses: str, error: str | None = None) -> list[TrialRecord]:
    return [TrialRecord(f"t{i}", {"optimizer.lr": 0.1}, status, error=error) for i, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("num_samples", "budget", "seconds", "ledger", "unfinished", "expected"),
    [
        (2, None, 5.0, records(Status.COMPLETE, Status.PRUNED), False, SweepEnding(None, False, False)),
        (3, None, 5.0, records(Status.COMPLETE, Status.PRUNED), False, SweepEnding(None, False, True)),
        (2, None, 5.0, records(Status.COMPLETE, Status.INTERRUPTED), True, SweepEnding(None, False, True)),
        (3, 60.0, 61.0, records(Status.COMPLETE, Status.TIMED_OUT), False, SweepEnding(None, True, False)),
        (3, 60.0, 61.0, records(Status.COMPLETE), False, SweepEnding(None, True, False)),
        (3, 60.0, 30.0, records(Status.COMPLETE), False, SweepEnding(None, False, True)),
        (5, None, 5.0, records(Status.FAILED, Status.FAILED, error="ValueError: x"), False,
         SweepEnding("ValueError: x", False, False)),
        (5, None, 5.0, records(Status.FAILED, Status.COMPLETE, error="ValueError: x"), False,
         SweepEnding(None, False, True)),
    ],
    ids=["finished", "short", "stopped-running", "budget-stopped-one", "budget-started-none", "within-budget",
         "all-failed-alike", "one-failed"],
)  # fmt: skip
def test_the_ending_follows_from_the_ledger_the_budget_and_the_clock(
    tmp_path, num_samples, budget, seconds, ledger, unfinished, expected
):
    folder = SweepFolder.at(tmp_path)
    assert sweep_ending(spec(num_samples, budget), ledger, unfinished, folder, seconds) == expected
