"""How a sweep ended, from its ledger alone: finished, interrupted (resume continues it), ended
by its time budget (finished), or stopped because every trial failed alike; and the ending's
steps (close, choose, test, export, close the records) on real records without training."""

import optuna
import pytest

from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord
from tuning.records.status import Status
from tuning.records.tracking import start_sweep_run
from tuning.run.config import load_run_config
from tuning.selection.outcome import SweepEnding, finish_sweep, sweep_ending
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


def test_finish_sweep_chooses_on_validation_exports_and_closes_the_records(tmp_path):
    """The ending's named steps on a real ledger, MLflow store and Optuna study, no training: the
    full-budget trial with the best validation is exported (a pruned trial's lower value is not a
    choice), the test is skipped with its reason (no checkpoint kept), and the sweep's MLflow run
    ends FINISHED with the best value."""
    folder = SweepFolder.at(tmp_path)
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("name: x\n")
    s = spec(3)
    ledger = Ledger(folder.ledger_file)
    full = [{"epoch": e, "val_loss": v} for e, v in ((1, 0.9), (2, 0.5))]
    for trial_id, status, history in (
        ("a", Status.COMPLETE, full),
        ("b", Status.COMPLETE, [{"epoch": 1, "val_loss": 0.8}, {"epoch": 2, "val_loss": 0.6}]),
        ("c", Status.PRUNED, [{"epoch": 1, "val_loss": 0.4}]),
    ):
        ledger.records[trial_id] = TrialRecord(trial_id, {"optimizer.lr": 0.1}, status, len(history), history)
    ledger.save()
    optuna.create_study(study_name="x", storage=folder.study_url)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = start_sweep_run(uri, "x", "x", tmp_path, {}, sweep_file)
    meta = {
        "sweep_file": str(sweep_file),
        "sweep_file_sha256": "0" * 64,
        "mlflow_uri": uri,
        "experiment_id": mlflow.experiment_id,
    }
    said: list[str] = []

    outcome = finish_sweep(s.model_copy(update={"training": s.training.model_copy(update={"epochs": 2})}), folder,
                           meta, mlflow, said.append, seconds=1.0)  # fmt: skip

    assert outcome.best is not None and outcome.best.record.trial_id == "a" and not outcome.interrupted
    provenance = load_run_config(folder.best_file).provenance
    assert provenance["trial_id"] == "a" and provenance["value"] == 0.5
    assert provenance["test"] is None and "checkpoint is not available" in provenance["test_on"]
    run = mlflow.client.get_run(mlflow.parent_run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["best_val_loss"] == 0.5
