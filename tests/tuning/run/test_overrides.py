"""`key=value` overrides after the file: checked against the schema, validated as the file is,
shown by `--dry-run`, and written into the sweep folder's copy of the file for `resume`."""

import pytest
import yaml

from tests.tuning.sweep.test_search_input import write_good
from tuning.cli import main
from tuning.driver import _copy_spec, plan_sweep
from tuning.errors import ConfigError
from tuning.run.overrides import parse_overrides
from tuning.sweep.spec import load_sweep


def search(tmp_path, *args):
    return main(["search", str(write_good(tmp_path)), "--storage-path", str(tmp_path / "runs"), "--dry-run", *args])


def test_values_parse_as_yaml():
    parsed = parse_overrides(["a.b=2", "c=0.5", "d=true", "e=[16, 32]", "f=kron", "g=1e-3"], "cli")
    assert [(o.key, o.value) for o in parsed] == [
        ("a.b", 2),
        ("c", 0.5),
        ("d", True),
        ("e", [16, 32]),
        ("f", "kron"),
        ("g", "1e-3"),  # YAML 1.1: a float needs its dot, as in the files themselves
    ]
    assert [o.text for o in parsed[:2]] == ["a.b=2", "c=0.5"]


@pytest.mark.parametrize("item", ["epochs", "=2", "training..epochs=2", "training.epochs"])
def test_what_is_not_key_value_is_refused(item):
    with pytest.raises(ConfigError, match="is not an override"):
        parse_overrides([item], "sweep.yaml")


def test_overrides_change_the_plan_and_dry_run_shows_them(tmp_path, capsys):
    assert search(tmp_path, "training.epochs=3", "search.num_samples=4", "space.optimizer.lr.high=0.5") == 0
    out = capsys.readouterr().out
    assert "4 trials of digits_autoencoder with fishleg, 3 epochs each at most" in out
    assert "optimizer.lr                     float        [0.001, 0.5] log" in out
    assert "overrides  training.epochs=3 search.num_samples=4 space.optimizer.lr.high=0.5" in out
    resolved = yaml.safe_load(out.split("resolved sweep file:\n", 1)[1])
    assert resolved["training"]["epochs"] == 3 and resolved["space"]["optimizer.lr"]["high"] == 0.5


def test_options_and_overrides_mix_in_any_order(tmp_path, capsys):
    path = str(write_good(tmp_path))
    assert main(["search", path, "--dry-run", "training.epochs=3", "--name", "x", "search.seed=4"]) == 0
    out = capsys.readouterr().out
    assert "sweep x:" in out and "(seed 4)" in out and "3 epochs each" in out


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("training.epoch=2", ["unknown key 'training.epoch'", "did you mean training.epochs?", "keys of training:"]),
        ("trainng.epochs=2", ["unknown key 'trainng.epochs'", "did you mean training.epochs?"]),
        ("resources.gpus=0", ["did you mean resources.gpu?"]),
        ("space.optimizer.lr.hihg=2", ["did you mean space.optimizer.lr.high?"]),
        ("training.epochs=0", ["with training.epochs=0", "training.epochs: Input should be greater than 0 (got 0)"]),
        ("training.device=tpu", ["training.device", "'auto', 'cpu', 'cuda' or 'cuda:N'"]),
        ("space.optimizer.lr.low=-1", ["space.optimizer.lr", "log scale needs low > 0"]),
        ("optimizer.lr=0.1", ["optimizer.lr is sampled by the sweep's space:", "space.optimizer.lr.low=…"]),
        ("optimizer.q_structure=diag", ["optimizer.q_structure is sampled"]),
    ],
)
def test_bad_overrides_exit_2_naming_the_key(tmp_path, capsys, override, fragments):
    assert search(tmp_path, override) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(tmp_path / "sweep.yaml") in err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "runs").exists()


def test_a_workloads_own_options_are_checked_by_the_workload(tmp_path, capsys):
    assert search(tmp_path, "workload.val_fraction=0.25") == 0
    assert search(tmp_path, "workload.val_fraction=2") == 2
    assert "workload.val_fraction" in capsys.readouterr().err


def test_num_samples_is_an_alias_named_as_given(tmp_path, capsys):
    assert search(tmp_path, "--num-samples", "0") == 2
    assert "with --num-samples 0" in capsys.readouterr().err


def test_train_takes_overrides_and_its_aliases(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump({"workload": {"name": "digits_classifier", "hidden": [8]}, "training": {"epochs": 5}})
    )
    out = tmp_path / "out"
    assert main(["train", str(config), "training.epochs=1", "optimizer.lr=0.01", "--output", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["training"]["epochs"] == 1 and saved["optimizer"]["lr"] == 0.01
    assert main(["train", str(config), "optimizer.lrr=0.01", "--output", str(tmp_path / "o2")]) == 2
    assert "did you mean optimizer.lr?" in capsys.readouterr().err
    assert main(["train", str(config), "--epochs", "0", "--output", str(tmp_path / "o3")]) == 2
    assert "with --epochs 0" in capsys.readouterr().err


def test_the_sweep_folder_keeps_the_file_as_resolved(tmp_path):
    """`resume` reads the folder's copy, so it runs with the same overrides."""
    path = write_good(tmp_path)
    overrides = parse_overrides(["training.epochs=3", "space.optimizer.lr.high=0.5"], str(path))
    plan = plan_sweep(path, storage=tmp_path / "runs", num_samples=5, overrides=overrides)
    copy = tmp_path / "copy.yaml"
    _copy_spec(path, copy, plan.file.data, plan.file.overrides)
    resumed = load_sweep(copy)
    assert resumed.training.epochs == 3 and resumed.search.num_samples == 5
    assert resumed.space["optimizer.lr"].high == 0.5
    plain = plan_sweep(path, storage=tmp_path / "runs")
    _copy_spec(path, copy, plain.file.data, plain.file.overrides)
    assert copy.read_text() == path.read_text()  # verbatim, comments and all, without overrides


def test_compare_applies_overrides_to_both_files(tmp_path, capsys):
    a = write_good(tmp_path)
    b = tmp_path / "b.yaml"
    b.write_text(a.read_text().replace("name: bad", "name: other"))
    args = ["compare", str(a), str(b), "--storage-path", str(tmp_path / "cmp")]
    assert main([*args, "training.epoch=2"]) == 2
    assert "did you mean training.epochs?" in capsys.readouterr().err
    assert main([*args, "optimizer.lr=0.1"]) == 2  # sampled in both
    assert "optimizer.lr is sampled" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()
