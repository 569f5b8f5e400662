"""`search.warm_start` through the installed executable, as a user runs it from their folder: a
grafted FishLeg sweep started from a finished AdamW sweep of the same workload tells Optuna the
AdamW trials first (lr and weight decay carry over) and runs the best of them first, says so in
its plan and in best_config.yaml's provenance, its report shows its own trials only, and a
resume tells nothing again."""

import json

import optuna
import pytest
import yaml

from tests.conftest import fishleg_tune
from tuning.records.folder import SweepFolder
from tuning.report import load_study
from tuning.sweep.warm_start import WARM_ATTR

from .conftest import sweep_file

pytestmark = pytest.mark.slow

SHARED = {
    "optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "optimizer.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
}


def test_a_grafted_fishleg_sweep_warm_started_from_an_adamw_sweep(tmp_path):
    common = {"training": {"epochs": 2}, "scheduler": {"type": "none"}}
    sweep_file(
        tmp_path / "adamw.yaml",
        name="adamw",
        optimizer={"name": "adamw"},
        space=SHARED,
        search={"num_samples": 3},
        **common,
    )
    assert fishleg_tune("search", "adamw.yaml", "--storage-path", "runs", cwd=tmp_path).returncode == 0
    earlier = json.loads((tmp_path / "runs" / "adamw" / "trials.json").read_text())

    graft = {"name": "fishleg", "graft": "adam", "q_init": "kfac", "aux_batch_size": 32, "update_aux_every": 5}
    space = {**SHARED, "optimizer.damping": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}
    sweep_file(tmp_path / "graft.yaml", name="graft", optimizer=graft, space=space, search={"num_samples": 2}, **common)
    args = ("search", "graft.yaml", "search.warm_start=[runs/adamw]", "--storage-path", "runs")
    plan = fishleg_tune(*args, "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert f"warm start 3 trials from {tmp_path / 'runs' / 'adamw'}, told to the sampler" in plan.stdout
    done = fishleg_tune(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    folder = tmp_path / "runs" / "graft"
    study = optuna.load_study(study_name="graft", storage=f"sqlite:///{folder / 'optuna.db'}")
    warm = [t for t in study.trials if WARM_ATTR in t.user_attrs]
    assert sorted((t.params["optimizer.lr"], t.value) for t in warm) == sorted(
        (r["params"]["optimizer.lr"], r["history"][-1]["val_loss"]) for r in earlier
    )
    assert all(set(t.params) == set(SHARED) for t in warm)  # AdamW's lr and weight decay; no damping
    best = min(earlier, key=lambda r: r["history"][-1]["val_loss"])
    first = min((t for t in study.trials if WARM_ATTR not in t.user_attrs), key=lambda t: t.number)
    assert {k: first.params[k] for k in SHARED} == best["params"]  # the best AdamW trial's values run first
    assert len(study.trials) == 5 and len(json.loads((folder / "trials.json").read_text())) == 2
    provenance = yaml.safe_load((folder / "best_config.yaml").read_text())["provenance"]
    assert provenance["warm_start"] == [{"sweep": str(tmp_path / "runs" / "adamw"), "used": 3, "skipped": 0}]
    assert len(load_study(SweepFolder.at(folder)).trials) == 2  # the report's study: this sweep's own trials

    resumed = fishleg_tune("resume", "runs/graft", cwd=tmp_path)  # told once: resume adds nothing
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    study = optuna.load_study(study_name="graft", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(study.trials) == 5 and len(json.loads((folder / "trials.json").read_text())) == 2

    refused = fishleg_tune("search", "graft.yaml", "search.warm_start=[runs/nowhere]", "--dry-run", cwd=tmp_path)
    assert refused.returncode == 2 and "search.warm_start[0]: runs/nowhere: no sweep there" in refused.stderr
    assert "Traceback" not in refused.stderr
