"""Trials that span several workers (`resources.workers`), end to end with real Ray Tune and
Ray Train on this machine's two CPUs (gloo on loopback): the built-in loop trains
data-parallel as one process would, and a training function's reports, checkpoints and
retries go through the same context and land where a one-worker trial's do."""

import json

import pytest
import ray
import yaml

import tuning
from tests.conftest import fishleg_tune
from tests.tuning.integration.conftest import sweep_file
from tests.tuning.plugins import fit_quadratic


def test_two_workers_train_data_parallel_as_one_process_would(tmp_path):
    # SGD with momentum: with DDP's averaged gradients, two workers each taking half of every
    # batch of 128 follow the one-process run of batch 128 (up to float rounding).
    sweep_file(
        tmp_path / "two.yaml",
        name="two",
        optimizer={"name": "sgd", "momentum": 0.9},
        space={"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2, "log": True}},
        search={"sampler": "random", "num_samples": 1, "max_concurrent": 1},
        training={"epochs": 2},
    )
    search = fishleg_tune(
        "search", "two.yaml", "resources.workers=2", "--storage-path", "runs", cwd=tmp_path, timeout=600
    )
    assert search.returncode == 0, search.stdout + search.stderr
    assert "2 workers of 1 CPU, 0 GPU per trial" in search.stdout
    (trial,) = json.loads((tmp_path / "runs/two/trials.json").read_text())
    assert trial["status"] == "COMPLETE" and trial["epochs"] == 2
    assert (tmp_path / "runs/two/tune" / f"trial_{trial['trial_id']}" / trial["checkpoint"] / "checkpoint.pt").exists()
    assert "its test:" in search.stdout  # the chosen trial's checkpoint loads on one process

    train = fishleg_tune("train", "runs/two/best_config.yaml", "--output", "one", cwd=tmp_path, timeout=600)
    assert train.returncode == 0, train.stdout + train.stderr
    alone = [json.loads(line) for line in (tmp_path / "one/metrics.jsonl").read_text().splitlines()]
    for together, one in zip(trial["history"], alone, strict=True):
        assert together["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
        assert together["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5)
    assert alone[-1]["val_loss"] < alone[0]["val_loss"] < 2.3  # it learnt: the comparison is not of two no-ops


def test_a_two_worker_trial_retries_from_its_checkpoint_and_hands_its_workers_back_when_stopped(ray_local, tmp_path):
    # The trial loses a worker in epoch 2 of its first attempt and is retried from its epoch-1
    # checkpoint on both workers; ASHA stops it at its last epoch (max_t), which is the path
    # that must end the workers in order: a Train run killed with its trial keeps its CPUs.
    spec = {
        "name": "own",
        "trainable": {"name": "tests.tuning.plugins:fit_quadratic", "fail_at": 2, "n": 32},
        "optimizer": {"name": "fishleg", "update_aux_every": 2, "aux_batch_size": 8},
        "training": {"epochs": 3, "batch_size": 16, "seed": 0, "device": "cpu"},
        "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True}},
        "search": {"sampler": "random", "num_samples": 1, "max_concurrent": 1, "max_failures": 1},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "resources": {"cpu": 1, "workers": 2},
    }
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(spec))
    outcome = tuning.search(fit_quadratic, tmp_path / "own.yaml", storage=tmp_path / "runs", echo=lambda line: None)

    assert outcome.counts == {"COMPLETE": 1}
    (row,) = json.loads((outcome.folder / "trials.json").read_text())
    assert [h["started_at_epoch"] for h in row["history"]] == [0, 1, 1]  # resumed on both workers, not restarted
    assert [h["epoch"] for h in row["history"]] == [1, 2, 3]
    assert outcome.best.value == pytest.approx(row["history"][-1]["val_loss"])
    assert {pg["state"] for pg in ray.util.placement_group_table().values()} == {"REMOVED"}
