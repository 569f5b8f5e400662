"""The training-function API (`tuning.run.fit`) outside a sweep: the context's checks, the
local context's files and resume, loading by name, `fishleg-tune train` and `tuning.train`
on a user's function."""

import json
import time

import pytest
import torch
import yaml

import tuning
from tests.tuning.plugins import fit_quadratic
from tuning.cli import main
from tuning.errors import ConfigError, NonFiniteLoss
from tuning.run.config import RunConfig, load_run_config
from tuning.run.fit import LocalContext, TrainableError, load_fit, load_saved

SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.0}


def run_config(**trainable) -> RunConfig:
    return RunConfig.model_validate(
        {
            "trainable": {"name": "tests.tuning.plugins:fit_quadratic", **trainable},
            "optimizer": SGD,
            "training": {"epochs": 3, "batch_size": 16, "seed": 1, "device": "cpu"},
        }
    )


def test_local_context_numbers_epochs_and_keeps_the_newest_checkpoint(tmp_path):
    seen = []
    started = time.perf_counter()
    context = LocalContext(run_config(), output=tmp_path / "run", on_report=seen.append)  # made if missing
    context.report({"val_loss": torch.tensor(2.5), "train_loss": 3}, checkpoint={"w": torch.ones(2)})
    elapsed = time.perf_counter() - started
    context.report({"val_loss": 2.0, "train_loss": 2.2, "epoch_time_s": 0.5})
    assert [r["epoch"] for r in context.history] == [1, 2] and seen == context.history
    assert context.history[0]["val_loss"] == 2.5 and 0 < context.history[0]["epoch_time_s"] <= elapsed
    assert context.history[1]["epoch_time_s"] == 0.5  # a given time is kept
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows == context.history
    saved = load_saved(tmp_path / "run" / "checkpoint.pt")
    assert saved.epoch == 1 and torch.equal(saved.state["w"], torch.ones(2))  # the only checkpointed report

    resumed = LocalContext(run_config(), restored=saved)
    assert resumed.epoch == 1 and torch.equal(resumed.checkpoint["w"], torch.ones(2))
    resumed.report({"val_loss": 1.0})
    assert resumed.history[0]["epoch"] == 2


@pytest.mark.parametrize(
    ("metrics", "error", "fragments"),
    [
        ([1.0], TrainableError, ["reported a list", "mapping"]),
        ({"val_loss": "low"}, TrainableError, ["val_loss='low'", "numbers"]),
        ({"val_loss": torch.ones(3)}, TrainableError, ["val_loss=", "numbers"]),
        ({"val_loss": 1.0, "epoch": 7}, TrainableError, ["epoch 7 as its epoch 1"]),
        ({"loss": 1.0}, TrainableError, ["['loss'] without 'val_loss'", "metric.name"]),
        ({"val_loss": float("nan")}, NonFiniteLoss, ["epoch 1", "nan"]),
    ],
)
def test_a_bad_report_is_refused_naming_the_function(metrics, error, fragments):
    context = LocalContext(run_config(), source="s.yaml")
    context.metric = "val_loss"
    with pytest.raises(error) as info:
        context.report(metrics)
    assert all(f in str(info.value) for f in fragments), str(info.value)
    if error is TrainableError:
        assert "s.yaml: trainable 'tests.tuning.plugins:fit_quadratic'" in str(info.value)
    assert context.epoch == 0 and context.history == []


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("fit_quadratic", ["'fit_quadratic' is not 'package.module:function'"]),
        ("no_such_module:fit", ["cannot load 'no_such_module:fit'", "ModuleNotFoundError"]),
        ("tests.tuning.plugins:nope", ["cannot load", "AttributeError"]),
        ("os:sep", ["'os:sep' is not callable", "(config: RunConfig, context: FitContext)"]),
        ("tests.tuning.plugins:not_a_fit", ["a callable taking (config", "not a training function"]),
    ],
)
def test_load_fit_names_the_file_field_and_what_a_training_function_is(name, fragments):
    with pytest.raises(ConfigError) as info:
        load_fit(name, "sweep.yaml")
    message = str(info.value)
    assert message.startswith("sweep.yaml: trainable.name") and "\n" not in message
    assert all(f in message for f in fragments), message


def test_a_config_names_one_of_workload_and_trainable():
    both = {"workload": {"name": "digits_classifier"}, "trainable": "m:f"}
    with pytest.raises(ValueError, match="exactly one of workload"):
        RunConfig.model_validate(both)
    bare = RunConfig.model_validate({"trainable": "m:f", "optimizer": SGD})
    assert bare.trainable.name == "m:f" and bare.trainable.options == {} and bare.subject == "m:f"
    assert bare.to_dict()["trainable"] == {"name": "m:f"}


def test_train_runs_a_training_function_and_resumes_it_identically(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(run_config(n=32).to_dict()))
    assert main(["train", str(path), "--output", str(tmp_path / "full")]) == 0
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "test_metrics.json" not in out
    assert main(["train", str(path), "--output", str(tmp_path / "part"), "--epochs", "1"]) == 0
    assert main(["train", str(path), "--output", str(tmp_path / "part"), "--resume"]) == 0

    def rows(folder):
        lines = (tmp_path / folder / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "epoch_time_s"} for line in lines]

    assert [r["epoch"] for r in rows("full")] == [1, 2, 3] and rows("part") == rows("full")
    assert rows("full")[-1]["val_loss"] < rows("full")[0]["val_loss"]
    assert load_run_config(tmp_path / "full" / "config.yaml").trainable.options == {"n": 32}


def test_python_api_trains_a_function_object_with_a_config_that_leaves_trainable_out(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"optimizer": SGD, "training": {"epochs": 2, "batch_size": 16, "device": "cpu"}}))
    result = tuning.train(fit_quadratic, path, tmp_path / "o", echo=lambda line: None)
    assert result.epochs == 2 and result.test == {} and "val_loss" in result.metrics
    saved = load_run_config(tmp_path / "o" / "config.yaml")
    assert saved.trainable.name == "tests.tuning.plugins:fit_quadratic"
