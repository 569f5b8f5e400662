"""`fishleg-tune best` and `report` read a sweep folder's files: they start without importing
Ray, MLflow or the training stack (and `best` without Optuna), checked in a fresh process on a
folder written here (the ledger, the Optuna study and the sweep file, as a sweep leaves them)."""

import json
import os
import subprocess
import sys

import optuna
import yaml

from tuning.records.ledger import TrialRecord

HEAVY = (
    "ray",
    "mlflow",
    "tuning.training",
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


def modules_after(command: list[str]) -> tuple[int, list[str]]:
    code = (
        "import sys\nfrom tuning.cli import main\ntry:\n    status = main(" + repr(command) + ")\n"
        "except SystemExit as exc:\n    status = exc.code\nprint(status, ' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    status, modules = out.strip().splitlines()[-1].split(" ", 1)
    return int(status), modules.split()


def test_help_and_file_errors_answer_without_torch_or_ray(tmp_path):
    """What a user gets at once: help, a missing file, a pipe given as a file (which would block a
    read forever) — none imports torch, Ray, Optuna or MLflow (benchmarks/cli_startup.py times it)."""
    fifo = tmp_path / "sweep.yaml"
    os.mkfifo(fifo)
    for command, status in [
        (["--help"], 0),
        (["search", "--help"], 0),
        (["search", str(tmp_path / "missing.yaml")], 2),
        (["train", str(fifo)], 2),
        (["compare", str(fifo), str(tmp_path / "missing.yaml")], 2),
    ]:
        got, modules = modules_after(command)
        assert got == status, command
        assert not [m for m in modules if m.split(".")[0] in ("torch", "ray", "optuna", "mlflow", "fishleg")], command
