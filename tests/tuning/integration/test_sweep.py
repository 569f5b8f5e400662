"""`fishleg-tune search` end to end with real Ray Tune, Optuna and MLflow, on digits."""

import json
import math
import os
import shutil
import signal
import subprocess
import time

import optuna
import pytest
import torch
from mlflow import MlflowClient

from tests.conftest import fishleg_tune
from tuning.cli import main
from tuning.driver import run_sweep
from tuning.run.config import load_run_config
from tuning.training import Trainer

from .conftest import slow_sweep, sweep_file

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


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


def checkpoints(folder):
    """{trial id: [its checkpoint folders]} in the sweep's Tune folder."""
    found = {}
    for path in sorted((folder / "tune").glob("trial_*/checkpoint_*")):
        found.setdefault(path.parent.name.removeprefix("trial_"), []).append(path.name)
    return found


def test_sweep_end_to_end(ray_local, tmp_path, capsys):
    spec = sweep_file(tmp_path / "tiny.yaml")
    outcome = run_sweep(spec, storage=tmp_path / "runs")
    folder = tmp_path / "runs" / "tiny"
    assert not outcome.interrupted
    records = ledger(folder)
    assert len(records) == 4
    # Only the exported trial's last checkpoint is kept (what its test evaluation read).
    best_id = outcome.best.record.trial_id
    assert checkpoints(folder) == {best_id: [records[best_id]["checkpoint"]]}
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
    best = load_run_config(folder / "best_config.yaml")
    assert best.provenance["value"] == pytest.approx(min(finals))
    assert best.provenance["full_budget"] is True
    assert best.provenance["mlflow_run_id"] in {r.info.run_id for r in children}
    assert best.optimizer.lr == pytest.approx(records[best.provenance["trial_id"]]["params"]["optimizer.lr"])
    assert Trainer(best).run_epoch()["val_loss"] < 2.3  # it learns: below chance level, ln 10
    out = capsys.readouterr().out
    assert "complete" in out and "epoch 1/3" in out

    # Test, once, for the exported trial only: in its provenance, its ledger row and MLflow.
    test = best.provenance["test"]
    assert set(test) == {"test_loss", "test_accuracy"} and outcome.test == test
    assert "final checkpoint (epoch 3)" in best.provenance["test_on"]
    assert [r["trial_id"] for r in records.values() if r["test"]] == [best.provenance["trial_id"]]
    assert records[best.provenance["trial_id"]]["test"] == test
    assert not any(k.startswith("test_") for r in records.values() for row in r["history"] for k in row)
    chosen = next(r for r in children if r.info.run_id == best.provenance["mlflow_run_id"])
    assert chosen.data.metrics["test_loss"] == pytest.approx(test["test_loss"])
    assert not any("test_loss" in r.data.metrics for r in children if r is not chosen)
    assert client.get_run(parents[0].info.run_id).data.metrics["test_loss"] == pytest.approx(test["test_loss"])

    assert main(["best", str(folder), "--json", "--top", "2"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["best_config"]["provenance"]["trial_id"] == best.provenance["trial_id"]
    assert len(payload["top"]) == 2


def test_failed_trial_is_recorded_and_the_sweep_goes_on(ray_local, tmp_path):
    spec = sweep_file(
        tmp_path / "tiny.yaml",
        workload={"name": "tests.tuning.plugins:sometimes_broken"},
        space={"workload.broken": {"type": "categorical", "choices": [True, False]}},
        search={
            "num_samples": 2,
            "max_failures": 2,
            "points_to_evaluate": [{"workload.broken": True}, {"workload.broken": False}],
        },
        scheduler={"type": "none"},
    )
    outcome = run_sweep(spec, storage=tmp_path / "runs")
    records = ledger(outcome.folder)
    assert sorted(r["status"] for r in records.values()) == ["COMPLETE", "FAILED"]
    (error_file,) = (outcome.folder / "tune").rglob("error.txt")
    assert "Failure # 1 " in error_file.read_text() and "Failure # 2" not in error_file.read_text()  # not retried
    (failed,) = [r for r in records.values() if r["status"] == "FAILED"]
    assert "broken on purpose" in failed["error"]
    states = sorted(t.state.name for t in study(outcome.folder).trials)
    assert states == ["COMPLETE", "FAIL"]
    _, _, children = mlflow_runs(outcome.mlflow_uri, "tiny")
    (failed_run,) = [r for r in children if r.info.status == "FAILED"]
    assert "broken on purpose" in failed_run.data.tags["failure_reason"]


def test_diverged_trials_end_cleanly_and_teach_the_sampler(ray_local, tmp_path):
    """SGD on a quadratic that diverges for every lr > 1: the diverged trials are DIVERGED
    everywhere, never retried, and TPE learns to stay away from them. One trial at a time, so
    TPE's history, and what it samples from it, does not depend on which trial ends first."""
    spec = sweep_file(
        tmp_path / "tiny.yaml",
        workload={"name": "tests.tuning.plugins:quadratic"},
        optimizer={"name": "sgd", "momentum": 0.0},
        training={"epochs": 2, "batch_size": 1},
        space={"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e3, "log": True}},
        search={"num_samples": 24, "max_failures": 2, "seed": 0, "max_concurrent": 1},
        scheduler={"type": "none"},
    )
    outcome = run_sweep(spec, storage=tmp_path / "runs")
    assert not outcome.interrupted
    records = sorted(ledger(outcome.folder).values(), key=lambda r: r["started"])
    assert len(records) == 24
    lrs = [r["params"]["optimizer.lr"] for r in records]
    diverged = [r["status"] == "DIVERGED" for r in records]
    assert all(d for lr, d in zip(lrs, diverged) if lr > 1.1) and not any(d for lr, d in zip(lrs, diverged) if lr < 1)
    assert all("loss became" in r["error"] for r, d in zip(records, diverged) if d)
    first, later = sum(diverged[:12]), sum(diverged[12:])  # TPE's 10 random start-up trials are in `first`
    assert first >= 4 and later <= first // 2, (first, later)
    # Nothing retried: no error files, no attempt that started past epoch 0.
    assert not list((outcome.folder / "tune").rglob("error.txt"))
    assert all(row["started_at_epoch"] == 0 for r in records for row in r["history"])
    # Optuna learnt from them: COMPLETE with the untrained model's loss, flagged diverged.
    val_y = torch.randn(256 + 128, 1, generator=torch.Generator().manual_seed(0))[256 : 256 + 64]
    untrained = float(0.5 * ((2**0.5 - val_y) ** 2).mean() + 0.5 * math.log(2 * math.pi))  # w = 1
    trials = {t.params["optimizer.lr"]: t for t in study(outcome.folder).trials}
    for lr, d in zip(lrs, diverged):
        if d:
            trial = trials[lr]  # the ledger and the study hold the same sampled float
            assert trial.state == optuna.trial.TrialState.COMPLETE and "loss became" in trial.user_attrs["diverged"]
            assert trial.value == pytest.approx(untrained)
    _, _, children = mlflow_runs(outcome.mlflow_uri, "tiny")
    assert sum(r.data.tags.get("trial_status") == "DIVERGED" for r in children) == sum(diverged)
    best = load_run_config(outcome.folder / "best_config.yaml")
    assert best.optimizer.lr < 1


def test_trials_never_touch_the_test_split(ray_local, tmp_path):
    log = tmp_path / "touches.jsonl"
    spec = sweep_file(
        tmp_path / "tiny.yaml",
        workload={"name": "tests.tuning.plugins:sealed_digits", "touch_log": str(log)},
        search={"num_samples": 3},
    )
    outcome = run_sweep(spec, storage=tmp_path / "runs", keep_checkpoints=True)
    records = ledger(outcome.folder)
    assert all(r["status"] in ("COMPLETE", "PRUNED") for r in records.values())
    kept = checkpoints(outcome.folder)  # --keep-checkpoints: every checkpoint of every trial
    assert set(kept) == set(records) and all(len(v) == records[k]["epochs"] for k, v in kept.items())
    touches = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(touches) == 1  # one process, after every trial had ended: the export's test
    assert touches[0]["time"] > max(r["ended"] for r in records.values())
    exported = load_run_config(outcome.folder / "best_config.yaml").provenance["test"]
    assert outcome.test is not None and outcome.test == exported  # evaluated once, and that is what was kept


def test_sweep_logs_to_an_mlflow_server(ray_local, tmp_path, mlflow_server):
    spec = sweep_file(tmp_path / "tiny.yaml", search={"num_samples": 2})
    outcome = run_sweep(spec, storage=tmp_path / "runs", mlflow_uri=mlflow_server, experiment="server-sweep")
    _, parents, children = mlflow_runs(mlflow_server, "server-sweep")
    assert len(parents) == 1 and len(children) == 2
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children)
    assert load_run_config(outcome.folder / "best_config.yaml").provenance["mlflow_tracking_uri"] == mlflow_server

    # The summary's link opens the runs table (the experiment is marked as model training),
    # checked in a real headless browser where one is installed.
    assert outcome.runs_url == f"{mlflow_server}/#/experiments/{outcome.experiment_id}/runs"
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip(f"no headless browser ({', '.join(BROWSERS)}) on this machine")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--virtual-time-budget=20000", "--dump-dom", outcome.runs_url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert outcome.folder.name in dom  # the parent run's name, in the runs table


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_losing_or_rerunning_trials(tmp_path):
    folder, cmd = slow_sweep(tmp_path, num_samples=5, epochs=3)
    proc = subprocess.Popen([*cmd, "search.num_samples=4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while True:  # two trials ended, others still to run: the interruption lands mid-sweep
        done = list(ledger(folder).values()) if (folder / "trials.json").exists() else []
        if sum(r["status"] in ("COMPLETE", "PRUNED") for r in done) >= 2:
            break
        assert proc.poll() is None and time.time() < deadline, "the sweep never reached two ended trials"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "fishleg-tune resume" in out
    before = {k: v for k, v in ledger(folder).items() if v["status"] in ("COMPLETE", "PRUNED")}
    _, _, children = mlflow_runs(f"sqlite:///{folder / 'mlflow.db'}", "tiny")
    assert all(r.info.status != "RUNNING" for r in children)

    resumed = fishleg_tune("resume", str(folder), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = ledger(folder)
    assert len(after) == 4  # the override, not the file's 5: resume runs the sweep as it was started
    assert all(r["status"] in ("COMPLETE", "PRUNED", "FAILED") for r in after.values())
    for trial_id, rec in before.items():
        assert after[trial_id] == rec  # kept, not rerun
    _, parents, children = mlflow_runs(f"sqlite:///{folder / 'mlflow.db'}", "tiny")
    assert len(children) == 4 and len(parents) == 1
    assert all(r.info.status != "RUNNING" for r in children + parents)
    assert len(study(folder).trials) == 4
    assert load_run_config(folder / "best_config.yaml").provenance["trial_id"] in after


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


def test_resources_no_node_has_are_refused_before_anything_is_written(ray_local, tmp_path, capsys):
    spec = sweep_file(tmp_path / "tiny.yaml", resources={"cpu": 1, "gpu": 2})
    assert main(["search", str(spec), "--storage-path", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "resources: a trial asks for 1 CPU and 2 GPU" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no folder, so no MLflow store and no parent run


def test_a_sweep_whose_first_trials_all_fail_alike_stops_there(ray_local, tmp_path, capsys):
    spec = sweep_file(
        tmp_path / "tiny.yaml",
        workload={"name": "tests.tuning.plugins:sometimes_broken", "broken": True},
        space={"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True}},
        search={"num_samples": 8, "max_concurrent": 2},
    )
    assert main(["search", str(spec), "--storage-path", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "sweep stopped" in err and "broken on purpose" in err
    records = ledger(tmp_path / "runs" / "tiny")
    assert 2 <= len(records) < 8 and all(r["status"] == "FAILED" for r in records.values())
    _, parents, children = mlflow_runs(f"sqlite:///{tmp_path / 'runs' / 'tiny' / 'mlflow.db'}", "tiny")
    assert parents[0].info.status == "FAILED" and all(r.info.status == "FAILED" for r in children)

    # The failed sweep's name: listed, refused for a new search, taken again with --overwrite.
    assert main(["list", "--storage-path", str(tmp_path / "runs")]) == 0
    assert "tiny" in capsys.readouterr().out
    again = ["search", str(spec), "--storage-path", str(tmp_path / "runs"), "workload.broken=false"]
    assert main([*again, "search.num_samples=2"]) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    assert main([*again, "search.num_samples=2", "--overwrite"]) == 0
    records = ledger(tmp_path / "runs" / "tiny")
    assert len(records) == 2 and all(r["status"] in ("COMPLETE", "PRUNED") for r in records.values())
    _, parents, _ = mlflow_runs(f"sqlite:///{tmp_path / 'runs' / 'tiny' / 'mlflow.db'}", "tiny")
    assert sorted(p.info.status for p in parents) == ["FAILED", "FINISHED"]  # MLflow keeps the history
