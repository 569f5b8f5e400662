"""What `resume` replays for trials the ledger saw end (the integration test in
test_faults.py makes the window itself), and that an ended record stays as recorded."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord
from tuning.records.status import DIVERGED_KEY
from tuning.sweep.callbacks import TrialRecorder
from tuning.sweep.reconcile import ended_results, restorable, tune_trial_ids
from tuning.sweep.trainable import Ended


def ledger_of(path: Path, *records: TrialRecord) -> Ledger:
    ledger = Ledger(path / "trials.json")
    ledger.records = {r.trial_id: r for r in records}
    ledger.save()
    return Ledger(path / "trials.json")


def row(epoch: int) -> dict:
    return {"epoch": epoch, "val_loss": 1.0 / epoch, "node_id": "n", "started_at_epoch": 0}


def test_ended_results_replays_complete_pruned_and_diverged_trials_only(tmp_path):
    folder = SweepFolder.locate(str(tmp_path), "s")
    ledger = ledger_of(
        tmp_path,
        TrialRecord("a", {}, "COMPLETE", 3, [row(1), row(2), row(3)], checkpoint="checkpoint_000002"),
        TrialRecord("b", {}, "PRUNED", 1, [row(1)]),
        TrialRecord("c", {}, "DIVERGED", 2, [row(1), row(2)], error="non-finite loss"),
        TrialRecord("d", {}, "FAILED", 1, [row(1)], error="boom"),
        TrialRecord("e", {}, "RUNNING", 2, [row(1), row(2)]),
        TrialRecord("f", {}, "INTERRUPTED", 1, [row(1)]),
    )
    assert ended_results(folder, ledger) == {
        "a": Ended(row(3), f"{tmp_path}/s/tune/trial_a/checkpoint_000002"),
        "b": Ended(row(1), None),
        "c": Ended({"epoch": 3, DIVERGED_KEY: "non-finite loss"}),
    }


def test_an_ended_record_ignores_tune_events_sent_again(tmp_path):
    ended = TrialRecord("a", {"lr": 0.1}, "COMPLETE", 3, [row(1), row(2), row(3)], ended=5.0)
    ledger_of(tmp_path, ended, TrialRecord("b", {"lr": 0.2}, "FAILED", 1, [row(1)], error="boom"))
    recorder = TrialRecorder(tmp_path / "trials.json", budget=3, mlflow=None)
    recorder.setup()
    trial_a = SimpleNamespace(trial_id="a", config={"lr": 0.1}, last_result={}, error_file=None)
    recorder.on_trial_start(0, [], trial_a)
    recorder.on_trial_result(0, [], trial_a, {**row(3), "started_at_epoch": 2})
    recorder.on_trial_error(0, [], trial_a)
    assert Ledger(tmp_path / "trials.json").records["a"] == ended

    trial_b = SimpleNamespace(trial_id="b", config={"lr": 0.2}, last_result={}, error_file=None)
    recorder.on_trial_start(0, [], trial_b)  # a FAILED trial is retried: RUNNING again
    recorder.on_trial_result(0, [], trial_b, {**row(2), "checkpoint_dir_name": "checkpoint_000001"})
    retried = Ledger(tmp_path / "trials.json").records["b"]
    assert (retried.status, retried.epochs, retried.checkpoint) == ("RUNNING", 2, "checkpoint_000001")


def state_file(folder: Path, time: str, trial_ids: list[str]) -> Path:
    """A Tune experiment state of the shape `tune_trial_ids` reads."""
    path = folder / f"experiment_state-{time}.json"
    path.write_text(json.dumps({"trial_data": [[json.dumps({"trial_id": t}), {}] for t in trial_ids]}))
    return path


@pytest.mark.parametrize("damage", ["", '{"trial_data": [["{\\"trial_id\\": \\"a'], ids=["empty", "cut_short"])
def test_a_state_the_kill_cut_short_is_set_aside_for_the_one_before_it(tmp_path, damage):
    state_file(tmp_path, "2026-01-01_10-00-00", ["a"])
    newest = state_file(tmp_path, "2026-01-01_11-00-00", ["a", "b"])
    newest.write_text(damage)
    said: list[str] = []
    assert tune_trial_ids(str(tmp_path), said.append) == {"a"}
    assert not newest.exists() and newest.with_name(newest.name + ".damaged").read_text() == damage
    assert len(said) == 1 and newest.name in said[0] and "cut short" in said[0]
    assert tune_trial_ids(str(tmp_path), said.append) == {"a"} and len(said) == 1  # the next resume reads it as is


def test_with_no_intact_state_left_tune_starts_afresh(tmp_path):
    (tmp_path / "tuner.pkl").write_bytes(b"")
    only = state_file(tmp_path, "2026-01-01_10-00-00", ["a"])
    assert restorable(str(tmp_path))
    only.write_text("")
    assert tune_trial_ids(str(tmp_path), lambda _: None) == set()
    assert not restorable(str(tmp_path))
