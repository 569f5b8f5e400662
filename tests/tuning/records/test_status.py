"""How a trial ended, read from its last result the one way the ledger, Optuna, MLflow and the
progress lines all use."""

import json

import pytest

from tuning.records.status import DIVERGED_KEY, TIMED_OUT_KEY, Ending, Status, ending


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        ({"epoch": 4, "val_loss": 0.1}, Ending(Status.COMPLETE)),
        ({"epoch": 2, "val_loss": 0.1}, Ending(Status.PRUNED)),
        (None, Ending(Status.PRUNED)),  # stopped before its first report
        ({"epoch": 2, TIMED_OUT_KEY: "trial_time_budget_s 5"}, Ending(Status.TIMED_OUT, "trial_time_budget_s 5")),
        ({"epoch": 4, TIMED_OUT_KEY: "time_budget_s 9"}, Ending(Status.COMPLETE)),  # it had finished anyway
        ({"epoch": 4, DIVERGED_KEY: "loss nan"}, Ending(Status.DIVERGED, "loss nan")),  # even in its last epoch
        ({"epoch": 1, DIVERGED_KEY: None}, Ending(Status.PRUNED)),
    ],
)
def test_the_last_result_says_how_a_trial_ended(last, expected):
    assert ending(last, budget=4) == expected


def test_only_complete_and_diverged_trials_give_the_searcher_a_value():
    assert {s for s in Status if Ending(s).has_value} == {Status.COMPLETE, Status.DIVERGED}


def test_statuses_are_stored_as_their_names():
    assert json.loads(json.dumps({"status": Status.TIMED_OUT})) == {"status": "TIMED_OUT"}
    assert Status("PRUNED") is Status.PRUNED and Status.PRUNED == "PRUNED"
