"""Earlier sweeps' trials mapped onto a new space (unit: ledgers and sweep folders written here):
shared keys kept, others dropped, a value outside the space skips its trial, an unmet `when:`
drops its parameter, only full-budget COMPLETE trials count; the best is the sweep's first trial;
the folders it may start from."""

import json

import optuna
import pytest
import yaml

from tuning.errors import ConfigError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import TrialRecord
from tuning.records.lock import driver_lock
from tuning.sweep.spec import SweepSpec
from tuning.sweep.warm_start import (
    WARM_ATTR,
    WarmStart,
    check_warm_start,
    own_trials,
    tell_warm_start,
    warm_start,
)

SPACE = {
    "optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
    "optimizer.weight_decay": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    "optimizer.q_structure": {"type": "categorical", "choices": ["kron", "kron_sum"]},
    "optimizer.kron_sum_rank": {"type": "int", "low": 2, "high": 3, "when": {"optimizer.q_structure": "kron_sum"}},
}


def spec(warm=(), workload="digits_classifier", epochs=2):
    return SweepSpec.model_validate(
        {
            "workload": {"name": workload},
            "optimizer": {"name": "fishleg", "graft": "adam"},
            "training": {"epochs": epochs},
            "space": SPACE,
            "search": {"warm_start": list(warm)},
        }
    )


def earlier(tmp_path, name, rows, workload="digits_classifier"):
    """A finished AdamW sweep's folder: its file as run, metadata and ledger."""
    folder = tmp_path / name
    folder.mkdir()
    adamw = {"workload": {"name": workload}, "optimizer": {"name": "adamw"}, "training": {"epochs": 2}}
    adamw["space"] = {"optimizer.lr": SPACE["optimizer.lr"]}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(adamw))
    (folder / "sweep.json").write_text(json.dumps({"name": name}))
    records = [
        TrialRecord(f"t{i}", params, status, epochs, [{"epoch": epochs, "val_loss": value}]).__dict__
        for i, (params, status, epochs, value) in enumerate(rows)
    ]
    (folder / "trials.json").write_text(json.dumps(records))
    return folder


def test_shared_keys_carry_over_and_what_does_not_fit_is_dropped_or_skipped(tmp_path):
    rows = [
        ({"optimizer.lr": 0.01, "optimizer.weight_decay": 1e-3, "optimizer.betas": [0.9, 0.99]}, "COMPLETE", 2, 0.5),
        ({"optimizer.lr": 0.5, "optimizer.weight_decay": 1e-3}, "COMPLETE", 2, 0.4),  # lr outside: skipped
        ({"optimizer.lr": 0.02}, "PRUNED", 1, 0.9),  # not at full budget: not used
        ({"optimizer.lr": 0.03, "optimizer.kron_sum_rank": 3}, "COMPLETE", 2, 0.6),  # its `when` unmet: dropped
    ]
    folder = earlier(tmp_path, "adamw", rows)
    warm = warm_start(spec(), [SweepFolder.at(folder)])
    assert [(params, value) for _, params, value in warm.trials] == [
        ({"optimizer.lr": 0.01, "optimizer.weight_decay": 1e-3}, 0.5),
        ({"optimizer.lr": 0.03}, 0.6),
    ]
    assert warm.sources == [{"sweep": str(folder), "used": 2, "skipped": 1}]
    assert warm.describe() == f"2 trials from {folder} (1 outside this space, skipped)"

    # Told to the study once, as COMPLETE trials marked with their source; told again: nothing added.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for _ in range(2):
        tell_warm_start(spec(), url, "new", warm)
    study = optuna.load_study(study_name="new", storage=url)
    told = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [(t.params, t.value, t.user_attrs[WARM_ATTR]) for t in told] == [
        ({"optimizer.lr": 0.01, "optimizer.weight_decay": 1e-3}, 0.5, f"{folder}/t0"),
        ({"optimizer.lr": 0.03}, 0.6, f"{folder}/t3"),
    ]
    # The best told trial is also the sweep's first, once, its other keys left to the sampler.
    (first,) = own_trials(study)
    assert first.state == optuna.trial.TrialState.WAITING
    trial = study.ask()
    assert trial.suggest_float("optimizer.lr", 1e-3, 0.1, log=True) == 0.01
    assert trial.suggest_float("optimizer.weight_decay", 1e-5, 0.1, log=True) == 1e-3


def test_the_first_trial_is_the_files_start_point_at_the_best_earlier_values():
    told = [("a/t0", {"optimizer.lr": 0.05}, 0.7), ("a/t1", {"optimizer.lr": 0.02}, 0.4)]
    recipe = {"optimizer.lr": 0.001, "optimizer.q_structure": "kron_sum", "optimizer.kron_sum_rank": 3}
    with_start = spec().model_copy(deep=True)
    with_start.search.points_to_evaluate.append(recipe)
    warm = WarmStart(told, [])
    assert warm.first_point(with_start) == {**recipe, "optimizer.lr": 0.02}  # the lower val_loss
    assert warm.first_point(spec()) == {"optimizer.lr": 0.02}
    assert WarmStart([], []).first_point(spec()) is None


def test_the_folders_a_sweep_may_start_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are read from the folder the command runs in
    earlier(tmp_path, "adamw", [])
    assert [f.path for f in check_warm_start(spec(["adamw"]), "s.yaml")] == [tmp_path / "adamw"]
    with pytest.raises(ConfigError, match=r"s.yaml: search.warm_start\[0\]: nowhere: no sweep there"):
        check_warm_start(spec(["nowhere"]), "s.yaml")
    earlier(tmp_path, "ae", [], workload="digits_autoencoder")
    with pytest.raises(ConfigError, match=r"warm_start\[1\]: ae: that sweep's workload is .*digits_autoencoder"):
        check_warm_start(spec(["adamw", "ae"]), "s.yaml")
    with pytest.raises(ConfigError, match="that sweep's training.epochs is 2, this one's 5"):
        check_warm_start(spec(["adamw"], epochs=5), "s.yaml")
    with driver_lock(tmp_path / "adamw", "search"), pytest.raises(ConfigError, match="is running now .*PID"):
        check_warm_start(spec(["adamw"]), "s.yaml")
