"""`fishleg-tune search` end to end with real Ray Tune, Optuna and MLflow, on digits."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient

from fishleg import load_config
from tuning.cli import main
from tuning.sweep import run_sweep
from tuning.train import Trainer

from .conftest import sweep_file


def ledger(folder):
    return {r["trial_id"]: r for r in json.loads((folder / "trials.json").read_text())}


def mlflow_runs(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def study(folder, name="tiny"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")


def test_sweep_end_to_end(ray_local, tmp_path, capsys):
    spec = sweep_file(tmp_path / "tiny.yaml")
    outcome = run_sweep(spec, storage=tmp_path / "runs")
    folder = tmp_path / "runs" / "tiny"
    assert outcome.exit_code == 0 and not outcome.interrupted
    records = ledger(folder)
    assert len(records) == 4
    assert {r["status"] for r in records.values()} <= {"COMPLETE", "PRUNED"}
    assert any(r["status"] == "COMPLETE" for r in records.values())

    # Optuna: pruned trials are PRUNED, full-budget ones COMPLETE with the final value.
    trials = study(folder).trials
    assert len(trials) == 4
    by_status = {s: sum(r["status"] == s for r in records.values()) for s in ("COMPLETE", "PRUNED")}
    assert sum(t.state == optuna.trial.TrialState.PRUNED for t in trials) == by_status["PRUNED"]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == by_status["COMPLETE"]
    finals = sorted(r["history"][-1]["val_loss"] for r in records.values() if r["status"] == "COMPLETE")
    assert sorted(t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE) == pytest.approx(finals)

    # MLflow: one parent, one child per trial with params and per-epoch metrics, none RUNNING.
    client, parents, children = mlflow_runs(outcome.mlflow_uri, "tiny")
    assert len(parents) == 1 and len(children) == 4
    assert parents[0].info.status == "FINISHED"
    assert "best_config.yaml" in [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    for run in children:
        rec = records[run.data.tags["trial_id"]]
        assert run.info.status == ("FINISHED" if rec["status"] == "COMPLETE" else "KILLED")
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(rec["params"]["optimizer.lr"])
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, rec["epochs"] + 1))

    # The best config is the best full-budget trial; it loads and trains.
    best = load_config(folder / "best_config.yaml")
    assert best.provenance["value"] == pytest.approx(min(finals))
    assert best.provenance["full_budget"] is True
    assert best.provenance["mlflow_run_id"] in {r.info.run_id for r in children}
    assert best.optimizer.lr == pytest.approx(records[best.provenance["trial_id"]]["params"]["optimizer.lr"])
    assert Trainer(best).run_epoch()["val_loss"] > 0
    out = capsys.readouterr().out
    assert "complete" in out and "epoch 1/3" in out

    assert main(["best", str(folder), "--json", "--top", "2"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["best_config"]["provenance"]["trial_id"] == best.provenance["trial_id"]
    assert len(payload["top"]) == 2


def test_failed_trial_is_recorded_and_the_sweep_goes_on(ray_local, tmp_path):
    spec = sweep_file(
        tmp_path / "tiny.yaml",
        optimizer={"name": "sgd", "momentum": 0.9},
        space={"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e15, "log": True}},
        search={"num_samples": 3, "sampler": "random", "points_to_evaluate": [{"optimizer.lr": 1e15}]},
        scheduler={"type": "none"},
    )
    outcome = run_sweep(spec, storage=tmp_path / "runs")
    folder = outcome.folder
    records = ledger(folder)
    failed = [r for r in records.values() if r["status"] == "FAILED"]
    assert len(records) == 3 and failed
    assert all("loss became" in r["error"] for r in failed)
    states = [t.state for t in study(folder).trials]
    assert states.count(optuna.trial.TrialState.FAIL) == len(failed)
    client, _, children = mlflow_runs(outcome.mlflow_uri, "tiny")
    failed_runs = [r for r in children if r.info.status == "FAILED"]
    assert len(failed_runs) == len(failed)
    assert "loss became" in failed_runs[0].data.tags["failure_reason"]


def test_sweep_logs_to_an_mlflow_server(ray_local, tmp_path, mlflow_server):
    spec = sweep_file(tmp_path / "tiny.yaml", search={"num_samples": 2})
    outcome = run_sweep(spec, storage=tmp_path / "runs", mlflow_uri=mlflow_server, experiment="server-sweep")
    _, parents, children = mlflow_runs(mlflow_server, "server-sweep")
    assert len(parents) == 1 and len(children) == 2
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children)
    assert load_config(outcome.folder / "best_config.yaml").provenance["mlflow_tracking_uri"] == mlflow_server


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_losing_or_rerunning_trials(tmp_path):
    spec = sweep_file(  # trials of a few seconds, so that the SIGINT lands mid-sweep
        tmp_path / "tiny.yaml",
        workload={"name": "digits_classifier", "hidden": [256, 256]},
        search={"num_samples": 6},
        training={"epochs": 4, "batch_size": 16},
    )
    folder = tmp_path / "runs" / "tiny"
    cmd = [sys.executable, "-m", "tuning.cli", "search", str(spec), "--storage-path", str(tmp_path / "runs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        done = [r for r in ledger(folder).values()] if (folder / "trials.json").exists() else []
        if sum(r["status"] in ("COMPLETE", "PRUNED") for r in done) >= 2:
            break
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "fishleg-tune resume" in out
    before = {k: v for k, v in ledger(folder).items() if v["status"] in ("COMPLETE", "PRUNED")}
    _, _, children = mlflow_runs(f"sqlite:///{folder / 'mlflow.db'}", "tiny")
    assert all(r.info.status != "RUNNING" for r in children)

    resumed = subprocess.run(
        [sys.executable, "-m", "tuning.cli", "resume", str(folder)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = ledger(folder)
    assert len(after) == 6
    assert all(r["status"] in ("COMPLETE", "PRUNED", "FAILED") for r in after.values())
    for trial_id, rec in before.items():
        assert after[trial_id] == rec  # kept, not rerun
    _, parents, children = mlflow_runs(f"sqlite:///{folder / 'mlflow.db'}", "tiny")
    assert len(children) == 6 and len(parents) == 1
    assert all(r.info.status != "RUNNING" for r in children + parents)
    assert len(study(folder).trials) == 6
    assert load_config(folder / "best_config.yaml").provenance["trial_id"] in after


def test_uri_storage_keeps_tune_state_there_and_driver_files_local(ray_local, tmp_path, monkeypatch):
    """A storage URI (file:// here; s3:// and gs:// go through the same pyarrow filesystem
    layer in Ray Tune) holds the trials' checkpoints; the driver keeps its files locally."""
    monkeypatch.chdir(tmp_path)
    spec = sweep_file(tmp_path / "tiny.yaml", search={"num_samples": 2})
    outcome = run_sweep(spec, storage=(tmp_path / "bucket").as_uri())
    assert outcome.folder == (tmp_path / "fishleg-runs" / "tiny").resolve()
    assert len(ledger(outcome.folder)) == 2 and (outcome.folder / "best_config.yaml").exists()
    assert list((tmp_path / "bucket" / "tiny" / "tune").glob("trial_*/checkpoint_*"))
    assert json.loads((outcome.folder / "sweep.json").read_text())["tune_storage"].startswith("file://")
    assert not (tmp_path / "mlruns").exists()  # MLflow artifacts stay in the sweep folder
    assert list((outcome.folder / "mlartifacts").rglob("best_config.yaml"))
