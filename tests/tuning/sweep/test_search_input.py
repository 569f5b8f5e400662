"""Bad sweep input: one paragraph naming the file and key, exit status 2, no trial started."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import fishleg_tune
from tests.tuning.conftest import free_port
from tuning.cli import main
from tuning.errors import UserError
from tuning.run.overrides import parse_overrides
from tuning.sweep.cluster import NodeInfo
from tuning.sweep.preflight import check_fits
from tuning.sweep.spec import load_sweep
from tuning.sweep.tuner import make_scheduler

GOOD = {
    "name": "bad",
    "workload": {"name": "digits_autoencoder"},
    "optimizer": {"name": "fishleg"},
    "training": {"epochs": 2},
    "metric": {"name": "val_loss", "mode": "min"},
    "space": {
        "optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
        "optimizer.q_structure": {"type": "categorical", "choices": ["kron", "kron_sum"]},
        "optimizer.kron_sum_rank": {"type": "int", "low": 2, "high": 3, "when": {"optimizer.q_structure": "kron_sum"}},
    },
}


def variant(**changes):
    spec = yaml.safe_load(yaml.safe_dump(GOOD, sort_keys=False))
    for dotted, value in changes.items():
        *path, leaf = dotted.split("/")
        node = spec
        for key in path:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return spec


CASES = {
    "unknown key": (variant(sapce={}), ["sapce", "unknown key"]),
    "wrong type": (variant(search={"num_samples": "many"}), ["search.num_samples", "integer"]),
    "low > high": (variant(**{"space/optimizer.lr/low": 2.0}), ["space.optimizer.lr", "low (2.0) must be <= high"]),
    "log low <= 0": (variant(**{"space/optimizer.lr/low": 0.0}), ["space.optimizer.lr", "log scale needs low > 0"]),
    "empty choices": (
        variant(**{"space/optimizer.q_structure/choices": []}),
        ["space.optimizer.q_structure", "non-empty"],
    ),
    "when unknown": (
        variant(**{"space/optimizer.kron_sum_rank/when": {"optimizer.structure": "kron_sum"}}),
        ["optimizer.kron_sum_rank.when", "optimizer.structure", "not a parameter"],
    ),
    "unknown workload": (variant(workload={"name": "imagenet"}), ["workload.name", "digits_autoencoder"]),
    "unknown optimizer": (variant(optimizer={"name": "lion"}), ["optimizer", "'fishleg'"]),
    "unknown sampler": (variant(search={"sampler": "bohb"}), ["search.sampler", "'tpe'"]),
    "unknown scheduler": (variant(scheduler={"type": "pbt"}), ["scheduler.type", "'asha'"]),
    "metric not reported": (variant(metric={"name": "val_accuracy"}), ["metric.name", "val_accuracy", "val_loss"]),
    "space key not in config": (
        variant(space={"optimizer.lrr": {"type": "float", "low": 0.1, "high": 1.0}}),
        ["space.optimizer.lrr: no such key in the run config; did you mean optimizer.lr?"],
    ),
    "grid float without step": (variant(search={"sampler": "grid"}), ["grid", "step"]),
    # Ranges are checked at both ends against the config schema, not by random draws.
    "int range below the schema": (
        variant(space={"optimizer.update_aux_every": {"type": "int", "low": 0, "high": 40}}),
        ["space.optimizer.update_aux_every at its low 0", "optimizer.update_aux_every", "greater than 0"],
    ),
    "float range from 0": (
        variant(space={"optimizer.lr": {"type": "float", "low": 0, "high": 0.1}}),
        ["space.optimizer.lr at its low 0.0", "greater than 0"],
    ),
    "float range up to an excluded bound": (
        variant(space={"optimizer.beta": {"type": "float", "low": 0.5, "high": 1.0}}),
        ["space.optimizer.beta at its high 1.0", "less than 1"],
    ),
    "a categorical choice the schema refuses": (
        variant(**{"space/optimizer.q_structure/choices": ["kron", "kron_summ"]}),
        ["space.optimizer.q_structure at its choice 'kron_summ'", "kron_sum"],
    ),
    "a workload option out of range": (
        variant(space={"workload.val_fraction": {"type": "float", "low": 0.1, "high": 1.0}}),
        ["space.workload.val_fraction at its high 1.0", "workload.val_fraction", "less than 1"],
    ),
    "a when: value never sampled": (
        variant(**{"space/optimizer.kron_sum_rank/when": {"optimizer.q_structure": "kron_summ"}}),
        ["space.optimizer.kron_sum_rank.when", "never 'kron_summ'", "['kron', 'kron_sum']"],
    ),
    "a point to evaluate outside its range": (
        variant(search={"points_to_evaluate": [{"optimizer.lr": 50.0}]}),
        ["search.points_to_evaluate[0].optimizer.lr", "50.0 is outside the space", "[0.001, 1]"],
    ),
    "a point to evaluate not among the choices": (
        variant(search={"points_to_evaluate": [{"optimizer.q_structure": "diag"}]}),
        ["search.points_to_evaluate[0].optimizer.q_structure", "one of ['kron', 'kron_sum']"],
    ),
    "an infinite bound": (
        variant(**{"space/optimizer.lr/high": float("inf")}),
        ["space.optimizer.lr.high", "finite number"],
    ),
    "no workers": (variant(resources={"workers": 0}), ["resources.workers", "greater than or equal to 1"]),
    "a batch that does not split into the workers": (
        variant(resources={"workers": 3}, training={"epochs": 2, "batch_size": 64}),
        ["training.batch_size 64", "3 equal parts", "resources.workers"],
    ),
    "ranking on test": (variant(metric={"name": "test_loss"}), ["metric.name", "choose on validation"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_sweep_files_exit_2_naming_the_key(tmp_path, capsys, case):
    spec, fragments = CASES[case]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["search", str(path), "--storage-path", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "runs").exists()


def write_good(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(GOOD, sort_keys=False))
    return path


def test_malformed_yaml_names_the_line_without_traceback(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("workload:\n  name: digits_autoencoder\nspace: {optimizer.lr: [\n")
    proc = fishleg_tune("search", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "malformed YAML at line" in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, capsys):
    path = write_good(tmp_path)
    path.write_text(path.read_text() + "training:\n  epochs: 5\n")
    assert main(["search", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "'training' is given twice in one mapping (lines" in err and str(path) in err


@pytest.mark.timeout(60)  # it hung before the size check: a hang fails here, not at the suite's timeout
def test_aliases_that_expand_past_any_config_size_are_refused_quickly(tmp_path, capsys):
    """A 1 KB file of aliases nested ten deep (10^10 values once expanded) hung `--dry-run`."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = tmp_path / "sweep.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert len(path.read_bytes()) < 1100
    assert main(["search", str(path), "--dry-run"]) == 2
    assert "aliases expand to more than 100,000 values" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["not-an-address", "10.0.0.5", "host:99999", "http://10.0.0.5:6379"])
def test_an_address_of_the_wrong_form_is_refused_before_the_file_is_read(tmp_path, capsys, address):
    missing = tmp_path / "missing.yaml"
    assert main(["search", str(missing), "--address", address]) == 2
    err = capsys.readouterr().err
    assert f"--address: {address!r} is not a Ray cluster address" in err and "missing.yaml" not in err


def test_unreachable_mlflow_server(tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    args = ["search", str(write_good(tmp_path)), "--storage-path", str(tmp_path / "runs"), "--mlflow-uri", uri]
    assert main(args) == 2
    assert f"--mlflow-uri {uri}" in capsys.readouterr().err


def test_unreachable_ray_address(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"
    args = ["search", str(write_good(tmp_path)), "--storage-path", str(tmp_path / "runs"), "--address", address]
    assert main(args) == 2
    assert f"--address {address}: no Ray cluster answers" in capsys.readouterr().err


def test_storage_path_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["search", str(write_good(tmp_path)), "--storage-path", str(blocker / "runs")]) == 2
    assert "--storage-path: cannot write" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    assert main(["search", str(write_good(tmp_path)), "--storage-path", str(tmp_path / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "optimizer.kron_sum_rank" in out and "when" in out and "asha" in out
    assert not (tmp_path / "runs").exists()


def test_shipped_sweep_files_validate(capsys, tmp_path, monkeypatch):
    files = sorted(p for p in Path("search_spaces").glob("*.yaml") if p.name != "cifar.yaml")
    files += sorted(Path("examples/charlm").glob("sweep*.yaml"))
    assert len(files) >= 11
    for path in map(str, files):
        assert main(["search", path, "--dry-run"]) == 0, capsys.readouterr().err
    # cifar.yaml reads data/cifar10: without the files (and no download) the preflight refuses
    # it; with the extracted batches in place (empty here: the preflight reads no data) it passes.
    cifar = Path("search_spaces/cifar.yaml").resolve()
    monkeypatch.chdir(tmp_path)
    assert main(["search", str(cifar), "--dry-run", "workload.download=false"]) == 2
    assert "CIFAR-10 is not in data/cifar10" in capsys.readouterr().err
    batches = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(b"")
    assert main(["search", str(cifar), "--dry-run"]) == 0, capsys.readouterr().err


def test_a_grace_period_above_the_budget_is_taken_as_the_budget_with_a_warning(tmp_path, capsys):
    """ASHA refuses grace_period > max_t; `training.epochs=2` on a file with grace 3 (the
    README's own CPU example for cifar.yaml) runs, and the plan says what happens."""
    path = write_good(tmp_path)
    args = ["search", str(path), "--dry-run", "training.epochs=2", "scheduler.grace_period=3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "asha (grace 2 epochs" in out
    assert "scheduler.grace_period 3 is more than training.epochs 2: it is taken as 2" in out
    spec = load_sweep(path, overrides=parse_overrides(args[3:], str(path)))
    scheduler = make_scheduler(spec)
    trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(3)]
    for i, trial in enumerate(trials):  # ever worse at epoch 1: an ASHA rung there would stop the last
        scheduler.on_trial_add(None, trial)
        assert scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_loss": 1.0 + i}) == "CONTINUE"
    assert (
        scheduler.on_trial_result(None, trials[2], {"training_iteration": 2, "val_loss": 9.0}) == "STOP"
    )  # the budget


def test_a_multi_worker_trial_must_fit_the_cluster_at_once():
    cluster = [NodeInfo("a" * 8, "127.0.0.2:1", 3.0, 0.0, True), NodeInfo("b" * 8, "127.0.0.2:2", 2.0, 0.0, False)]
    check_fits(cluster, 1.0, 0.0, workers=5)  # 3 + 2 workers of one CPU
    check_fits(cluster, 1.5, 0.0, workers=3)  # 2 + 1
    with pytest.raises(UserError, match=r"resources.workers: a trial asks for 4 workers of 1.5 CPU .* holds 3 at once"):
        check_fits(cluster, 1.5, 0.0, workers=4)
    with pytest.raises(UserError, match="no node has 4 CPU"):
        check_fits(cluster, 4.0, 0.0, workers=1)
