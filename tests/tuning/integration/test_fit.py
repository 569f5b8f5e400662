"""Sweeps of a user's own training function (`trainable:` and `tuning.search`) with real Ray
Tune, Optuna and MLflow: reports, checkpoints and retries through the context, the export,
and training functions that break the protocol."""

import json
import os

import optuna
import pytest
import yaml
from mlflow import MlflowClient

import tuning
from tests.conftest import ROOT, fishleg_tune
from tests.tuning.plugins import fit_quadratic
from tuning.driver import run_sweep
from tuning.run.config import load_run_config
from tuning.sweep.tuner import TUNE_ENVIRONMENT

from .conftest import gated

SPACE = {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}


def spec_file(path, trainable=None, **search):
    spec = {
        "name": "own",
        "optimizer": {"name": "sgd", "momentum": 0.0},
        "training": {"epochs": 3, "batch_size": 16, "seed": 0, "device": "cpu"},
        "metric": {"name": "val_loss", "mode": "min"},
        "space": SPACE,
        "search": {"sampler": "random", "seed": 0, "num_samples": 3, "max_concurrent": 2, **search},
        "scheduler": {"type": "none"},
        "resources": {"cpu": 1},
    }
    if trainable is not None:
        spec["trainable"] = trainable
    path.write_text(yaml.safe_dump(spec))
    return path


def test_python_api_tunes_a_function_object_retrying_from_its_checkpoints(ray_local, tmp_path):
    # Every trial loses its worker in epoch 2 of its first attempt: Tune retries it from the
    # epoch-1 checkpoint the function reported, which comes back as context.checkpoint.
    spec = spec_file(tmp_path / "own.yaml", max_failures=1, num_samples=5)  # 2 by the override below
    data = yaml.safe_load(spec.read_text())
    data["trainable"] = {"name": "tests.tuning.plugins:fit_quadratic", "fail_at": 2, "n": 32}
    spec.write_text(yaml.safe_dump(data))
    own = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"
    os.environ[own] = "1"  # a user's own value, kept during the sweep and after it
    before = {key: os.environ.get(key) for key in TUNE_ENVIRONMENT}
    outcome = tuning.search(
        fit_quadratic, spec, storage=tmp_path / "runs", echo=lambda line: None, **{"search.num_samples": 2}
    )
    after = {key: os.environ.get(key) for key in TUNE_ENVIRONMENT}
    del os.environ[own]

    assert after == before  # Tune's settings were scoped to the sweep
    assert not outcome.interrupted and outcome.counts == {"COMPLETE": 2}
    trials = outcome.trials()
    assert list(trials["status"]) == ["COMPLETE"] * 2 and list(trials["epochs"]) == [3, 3]
    assert outcome.best.value == pytest.approx(trials["val_loss"].min())
    rows = json.loads((outcome.folder / "trials.json").read_text())
    assert all([h["started_at_epoch"] for h in r["history"]] == [0, 1, 1] for r in rows)  # resumed, not restarted
    best = load_run_config(outcome.best_file)
    assert best.trainable.name == "tests.tuning.plugins:fit_quadratic" and best.optimizer.lr == pytest.approx(
        outcome.best.record.params["optimizer.lr"]
    )
    assert outcome.test is None and "its own" in outcome.test_note  # the function's test split is its own

    client = MlflowClient(outcome.mlflow_uri)
    experiment = client.get_experiment(outcome.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    assert outcome.runs_url == f"http://127.0.0.1:5000/#/experiments/{outcome.experiment_id}/runs"
    children = [r for r in client.search_runs([outcome.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert all(len(client.get_metric_history(r.info.run_id, "val_loss")) >= 3 for r in children)


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("fit_silent", ["returned without calling context.report"]),
        ("fit_wrong_metric", ["reported ['loss'] without 'val_loss'"]),
        ("fit_raises", ["raised ValueError: no data here"]),
        ("fit_exits", ["called sys.exit(0)", "return from the function instead"]),
        ("fit_interrupts", ["raised KeyboardInterrupt: stopped by hand in its own code, not a Ctrl-C"]),
    ],
)
def test_a_broken_training_function_stops_the_sweep_early_naming_it(ray_local, tmp_path, name, fragments):
    spec = spec_file(tmp_path / "own.yaml", trainable=f"tests.tuning.plugins:{name}", max_failures=0)
    outcome = run_sweep(spec, storage=tmp_path / "runs", echo=lambda line: None)
    assert outcome.failure is not None and outcome.best is None
    assert f"trainable 'tests.tuning.plugins:{name}'" in outcome.failure and "sweep.yaml" in outcome.failure
    assert all(f in outcome.failure for f in fragments), outcome.failure
    assert sum(outcome.counts.values()) == 2  # stopped after the first two, not all three


def _hanging(tmp_path, **search):
    """A sweep whose trials report epoch 1, then hang before epoch 2 (a gate nobody opens)."""
    return gated(spec_file(tmp_path / "own.yaml", **search), tmp_path / "never", gate_epoch=2, n=32)


def test_a_hanging_trial_past_its_time_budget_ends_timed_out_everywhere(ray_local, tmp_path, capsys):
    spec = _hanging(tmp_path, num_samples=2, trial_time_budget_s=4)
    outcome = tuning.search(fit_quadratic, spec, storage=tmp_path / "runs", echo=print)
    out = capsys.readouterr().out
    assert out.count("timed out") == 2 and "stopped after 4 s (search.trial_time_budget_s)" in out
    assert not outcome.interrupted and outcome.counts == {"TIMED_OUT": 2}
    assert outcome.budget_note.startswith("every trial was stopped by its time budget, 4 s (search.trial_time_budget")
    rows = json.loads((outcome.folder / "trials.json").read_text())
    # Stopped by its budget, not left to its 300 s gate (on a loaded machine, maybe before epoch 1).
    assert all(r["epochs"] <= 1 and r["ended"] - r["started"] < 60 for r in rows), rows
    study = optuna.load_study(study_name="own", storage=f"sqlite:///{outcome.folder / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["PRUNED"] * 2
    assert all("trial_time_budget_s" in t.user_attrs["timed_out"] for t in study.trials)
    client = MlflowClient(outcome.mlflow_uri)
    children = [r for r in client.search_runs([outcome.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert sorted((r.info.status, r.data.tags["trial_status"]) for r in children) == [("KILLED", "TIMED_OUT")] * 2


def test_a_sweep_past_its_time_budget_stops_its_trial_starts_none_and_ends_finished(tmp_path):
    spec = _hanging(tmp_path, num_samples=3, max_concurrent=1, time_budget_s=6)
    done = fishleg_tune("search", str(spec), "--storage-path", str(tmp_path / "runs"), cwd=ROOT, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out  # it ended (no trial completed: not 0)
    assert "time budget:  the sweep's time budget ran out after 6 s" in out and "2 never started" in out
    (row,) = json.loads((tmp_path / "runs" / "own" / "trials.json").read_text())
    assert row["status"] == "TIMED_OUT" and row["epochs"] <= 1 and "search.time_budget_s=6" in row["error"]
