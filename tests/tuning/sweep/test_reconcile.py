"""What `resume` replays for trials the ledger saw end (the integration test in
test_faults.py makes the window itself), and that an ended record stays as recorded."""

from pathlib import Path
from types import SimpleNamespace

from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord
from tuning.sweep.callbacks import TrialRecorder
from tuning.sweep.reconcile import ended_results
from tuning.sweep.trainable import DIVERGED, Ended


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
        "c": Ended({"epoch": 3, DIVERGED: "non-finite loss"}),
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
