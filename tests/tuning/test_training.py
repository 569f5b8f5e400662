"""`fishleg-tune train` end to end on digits, resume, determinism, and bad input."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from tests.conftest import fishleg_tune
from tuning.cli import main
from tuning.run.config import load_run_config
from tuning.training import Trainer
from tuning.workloads import build_workload
from tuning.workloads.base import WorkloadConfig


def write_config(path, optimizer=None, epochs=3, workload=None, batch_size=64):
    path.write_text(
        yaml.safe_dump(
            {
                "workload": workload or {"name": "digits_classifier", "hidden": [16]},
                "optimizer": optimizer
                or {"name": "fishleg", "lr": 0.2, "aux_lr": 1e-2, "update_aux_every": 5, "aux_batch_size": 32},
                "training": {"epochs": epochs, "batch_size": batch_size, "seed": 3, "device": "cpu"},
            }
        )
    )
    return path


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def test_train_end_to_end_and_resume_matches_uninterrupted(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", epochs=4)
    assert main(["train", str(cfg), "--output", str(tmp_path / "full")]) == 0
    out = capsys.readouterr().out
    assert "epoch 4/4" in out and "metrics.jsonl" in out
    full = read_metrics(tmp_path / "full")
    assert [r["epoch"] for r in full] == [1, 2, 3, 4]
    assert full[-1]["val_accuracy"] > 0.7 and full[-1]["val_loss"] < full[0]["val_loss"]
    assert not any(k.startswith("test_") for row in full for k in row)  # per epoch: validation only
    test = json.loads((tmp_path / "full" / "test_metrics.json").read_text())
    assert test["epoch"] == 4 and test["test_accuracy"] > 0.7
    assert f"test_loss {test['test_loss']:.4g}" in out

    assert main(["train", str(cfg), "--output", str(tmp_path / "part"), "--epochs", "2"]) == 0
    assert main(["train", str(cfg), "--output", str(tmp_path / "part"), "--resume"]) == 0
    assert strip_time(read_metrics(tmp_path / "part")) == strip_time(full)
    assert load_run_config(tmp_path / "full" / "config.yaml") == load_run_config(cfg).model_copy()


def test_same_seed_same_metrics(tmp_path):
    cfg = load_run_config(write_config(tmp_path / "c.yaml", epochs=2))
    runs = [[Trainer(cfg).run_epoch() for _ in range(1)] for _ in range(2)]
    assert strip_time(runs[0]) == strip_time(runs[1])


def test_baseline_config_trains(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", optimizer={"name": "adamw", "lr": 3e-3}, epochs=2)
    assert main(["train", str(cfg), "--output", str(tmp_path / "o")]) == 0
    assert "aux_loss" not in read_metrics(tmp_path / "o")[-1]


def test_divergence_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", optimizer={"name": "sgd", "lr": 1e15, "momentum": 0.9}, epochs=5)
    assert main(["train", str(cfg), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "epoch 1: loss became" in err and "no epoch completed, so there is no checkpoint" in err
    assert read_metrics(tmp_path / "o") == [] and not (tmp_path / "o" / "checkpoint.pt").exists()


def test_a_preconditioner_that_fails_to_factorise_is_a_divergence(tmp_path, capsys):
    """Shampoo's SVD of a non-finite statistic raises torch's LinAlgError inside the step: the
    run diverged (exit 1, a sweep's trial reports it), not a crash of the tool."""
    workload = {"name": "tests.tuning.plugins:quadratic", "n": 32, "nan_target": 5}
    cfg = write_config(tmp_path / "c.yaml", optimizer={"name": "shampoo"}, epochs=2, workload=workload, batch_size=1)
    assert main(["train", str(cfg), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "epoch 1: the optimizer's linear algebra failed (linalg." in err and "Traceback" not in err


def test_divergence_later_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # SGD on the quadratic plugin with lr 1.03 grows w by 1.06 per step: inf in epoch 3.
    cfg = write_config(
        tmp_path / "c.yaml",
        optimizer={"name": "sgd", "lr": 1.03, "momentum": 0.0},
        epochs=8,
        workload={"name": "tests.tuning.plugins:quadratic"},
        batch_size=1,
    )
    assert main(["train", str(cfg), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "epoch 3: loss became" in err and "the checkpoint of epoch 2 is kept" in err
    rows = read_metrics(tmp_path / "o")
    assert [r["epoch"] for r in rows] == [1, 2]
    saved = torch.load(tmp_path / "o" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["state"]["epoch"] == 2
    assert all(torch.isfinite(t).all() for t in saved["state"]["model"].values() if t.is_floating_point())
    assert not (tmp_path / "o" / "test_metrics.json").exists()


def test_trainer_reads_the_test_split_only_in_test(tmp_path):
    log = tmp_path / "touches.jsonl"
    cfg = load_run_config(
        write_config(
            tmp_path / "c.yaml",
            epochs=1,
            workload={"name": "tests.tuning.plugins:sealed_digits", "touch_log": str(log)},
        )
    )
    trainer = Trainer(cfg)
    trainer.run_epoch()
    assert not log.exists()
    test = trainer.test()
    assert set(test) == {"test_loss", "test_accuracy"} and log.exists()


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (
            "workload: {name: digits_classifier}\noptimizer: {name: fishleg, lr: -2}\n",
            ["optimizer.lr", "greater than 0"],
        ),
        ("workload: {name: nope}\n", ["workload.name", "digits_classifier"]),
        ("workload: {name: digits_classifier, hidden: [0]}\n", ["workload.hidden.0", "greater than 0"]),
        ("workload: {name: digits_classifier, colour: red}\n", ["workload.colour", "unknown key"]),
        (
            "workload: {name: mnist_autoencoder, data_dir: /nonexistent/mnist, download: false}\n",
            ["/nonexistent/mnist", "idx"],
        ),
        ("workload: {name: 'no_such_pkg.mod:build'}\n", ["no_such_pkg"]),
        ("workload: [\n", ["malformed YAML", "line"]),
    ],
)
def test_bad_input_exits_2_with_one_paragraph_and_no_traceback(tmp_path, capsys, content, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["train", str(path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(fragment in err for fragment in fragments), err


def test_bad_input_through_the_installed_command(tmp_path):
    """The same path through the executable once (the cases above run the command's own main)."""
    path = tmp_path / "bad.yaml"
    path.write_text("workload: {name: digits_classifier}\noptimizer: {name: fishleg, lr: -2}\n")
    proc = fishleg_tune("train", str(path), "--output", str(tmp_path / "o"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "optimizer.lr" in proc.stderr and "greater than 0" in proc.stderr


def test_plugin_workload_by_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_workload.py").write_text(
        "from tuning.workloads.digits import digits_classifier, ClassifierOptions\n"
        "def build(options, seed):\n    return digits_classifier(ClassifierOptions(hidden=[4]), seed)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    w = build_workload(WorkloadConfig(name="my_workload:build"), seed=0)
    assert w.model[0].out_features == 4


def test_train_logs_the_run_to_mlflow(tmp_path):
    from mlflow import MlflowClient

    cfg = write_config(tmp_path / "c.yaml", epochs=2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["train", str(cfg), "--output", str(tmp_path / "o"), "--mlflow-uri", uri, "--experiment", "prod"]
    assert main(args) == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("prod").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.lr"] == "0.2" and run.data.params["workload.name"] == "digits_classifier"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
        r["val_loss"] for r in read_metrics(tmp_path / "o")
    ]


def test_same_seed_same_metrics_in_separate_processes(tmp_path):
    """FishLeg's aux batches follow the training seed, not the process: two fresh processes
    with one config train identically (Ray trials and seed re-runs are separate processes)."""
    cfg = write_config(tmp_path / "c.yaml", epochs=1)
    code = (
        "import json, sys; from tuning.run.config import load_run_config; from tuning.training import Trainer;"
        f"m = Trainer(load_run_config({str(cfg)!r})).run_epoch(); m.pop('epoch_time_s'); print(json.dumps(m))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert json.loads(runs[0]) == json.loads(runs[1])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_workload_of_datasets_trains_through_dataloaders_and_resumes_identically(tmp_path, num_workers):
    streamed = {"name": "tests.tuning.plugins:digits_streamed", "num_workers": num_workers}
    config = load_run_config(write_config(tmp_path / "c.yaml", epochs=2, workload=streamed, batch_size=32))
    full = Trainer(config)
    rows = [full.run_epoch(), full.run_epoch()]
    assert rows[1]["val_loss"] < rows[0]["val_loss"] and rows[1]["val_accuracy"] > 0.5
    assert set(full.test()) == {"test_loss", "test_accuracy"}

    part = Trainer(config)
    part.run_epoch()
    state = part.state_dict()
    resumed = Trainer(config)
    resumed.load_state_dict(state)
    assert strip_time([resumed.run_epoch()]) == strip_time(rows[1:])


@pytest.mark.parametrize(
    "control",
    [
        {"q_init": "identity", "graft": "sgd"},  # identity-Q: grafted momentum SGD
        {"q_init": "kfac", "kfac_every": 5},  # K-FAC-only: Q at K-FAC's estimate, made every 5 steps
    ],
    ids=["identity", "kfac-only"],
)
def test_train_runs_the_controls_without_an_aux_loop(tmp_path, control):
    """With learn_q false the aux loop never runs: no aux_loss is reported (it would be NaN, and
    a NaN metric counts as divergence), the loss still falls, through the installed command."""
    optimizer = {"name": "fishleg", "lr": 0.05, "learn_q": False, "aux_batch_size": 32, "damping": 0.1, **control}
    config = write_config(tmp_path / "control.yaml", optimizer=optimizer, epochs=2)
    done = fishleg_tune("train", str(config), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_metrics(tmp_path / "out")
    assert [r["epoch"] for r in rows] == [1, 2] and not any("aux_loss" in r for r in rows)
    assert rows[1]["val_loss"] < rows[0]["val_loss"] < 2.3  # below chance level, ln 10


def test_train_says_when_a_config_names_no_optimizer(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"workload": {"name": "digits_classifier", "hidden": [8]}, "training": {"epochs": 1}})
    )
    assert main(["train", str(path), "--output", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert "note: no optimizer: section: FishLeg with all its defaults" in capsys.readouterr().out


def test_train_keeps_a_run_of_another_config_unless_told(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for sweep, lr in (("sweep_a", 0.1), ("sweep_b", 0.2)):
        (tmp_path / sweep).mkdir()
        write_config(tmp_path / sweep / "best_config.yaml", optimizer={"name": "sgd", "lr": lr}, epochs=1)
    assert main(["train", "sweep_a/best_config.yaml"]) == 0
    assert main(["train", "sweep_b/best_config.yaml"]) == 0  # each sweep's config has its own default folder
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"sweep_a", "sweep_b"}
    capsys.readouterr()
    before = (tmp_path / "runs" / "sweep_a" / "metrics.jsonl").read_text()
    code = main(["train", "sweep_b/best_config.yaml", "--output", "runs/sweep_a"])
    assert code == 2 and "holds the run of another config" in capsys.readouterr().err
    assert (tmp_path / "runs" / "sweep_a" / "metrics.jsonl").read_text() == before
    assert main(["train", "sweep_b/best_config.yaml", "--output", "runs/sweep_a", "--overwrite"]) == 0
    assert load_run_config(tmp_path / "runs" / "sweep_a" / "config.yaml").optimizer.lr == 0.2
