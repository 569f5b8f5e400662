"""`fishleg-tune best` and `report` read a sweep folder's files: they start without importing
Ray, MLflow or the training stack (and `best` without Optuna), checked in a fresh process on a
folder written here (the ledger, the Optuna study and the sweep file, as a sweep leaves them)."""

import json
import subprocess
import sys

import optuna
import yaml

from tuning.records.ledger import TrialRecord

HEAVY = (
    "ray",
    "mlflow",
    "tuning.run.trainer",
    "tuning.sweep.trainable",
    "tuning.sweep.callbacks",
    "tuning.workloads.digits",
)


def sweep_folder(tmp_path):
    folder = tmp_path / "runs" / "done"
    folder.mkdir(parents=True)
    spec = {
        "workload": {"name": "digits_classifier"},
        "training": {"epochs": 2},
        "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
        "search": {"num_samples": 3},
    }
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
    study = optuna.create_study(study_name="done", storage=f"sqlite:///{folder / 'optuna.db'}")
    rows = []
    for i, lr in enumerate([0.01, 0.1, 0.5]):
        trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
        for epoch in (1, 2):
            trial.report(1.0 / (epoch + i), epoch)
        study.tell(trial, 1.0 / (2 + i))
        history = [{"epoch": e, "val_loss": 1.0 / (e + i)} for e in (1, 2)]
        rows.append(TrialRecord(f"t{i}", {"optimizer.lr": lr}, "COMPLETE", 2, history).__dict__)
    (folder / "trials.json").write_text(json.dumps(rows))
    return folder


def imported_by(command: list[str]) -> list[str]:
    code = (
        f"import sys\nfrom tuning.cli import main\nassert main({command!r}) == 0\nprint(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_best_and_report_import_neither_ray_nor_the_training_stack(tmp_path):
    folder = sweep_folder(tmp_path)
    best = imported_by(["best", str(folder), "--json"])
    assert "tuning.records.ledger" in best
    assert not [m for m in best if m.startswith(HEAVY + ("optuna",))]
    report = imported_by(["report", str(folder)])
    assert "optuna" in report and (folder / "report.html").exists()
    assert not [m for m in report if m.startswith(HEAVY)]
