"""Run configs: round trips, building FishLeg and baselines from them, validation messages."""

import pytest
import torch
import yaml
from torch import nn

from fishleg import CategoricalLikelihood, FishLeg, FishLegConfig, load_config
from tuning.errors import ConfigError
from tuning.run.config import RunConfig, load_run_config, save_config
from tuning.run.optimizers import AdamWConfig
from tuning.run.overrides import parse_overrides


def run_config(**optimizer):
    return RunConfig.model_validate(
        {"workload": {"name": "digits_classifier", "hidden": [8]}, "optimizer": optimizer, "training": {"epochs": 2}}
    )


def test_round_trip_keeps_every_hyperparameter(tmp_path):
    cfg = run_config(
        name="fishleg",
        lr=0.02,
        aux_lr=3e-4,
        aux_batch_size=50,
        damping=0.1,
        update_aux_every=5,
        q_structure="kron_sum",
        kron_sum_rank=3,
    )
    save_config(cfg, tmp_path / "c.yaml")
    loaded = load_run_config(tmp_path / "c.yaml")
    assert loaded == cfg
    assert load_config(tmp_path / "c.yaml") == cfg.optimizer  # the library reads the optimizer section
    assert loaded.workload.options == {"hidden": [8]}
    model = nn.Linear(3, 4)
    opt = FishLeg.from_config(model, loaded, likelihood=CategoricalLikelihood(), aux_data=torch.randn(8, 3))
    assert opt.config == cfg.optimizer
    assert opt.param_groups[0]["lr"] == 0.02 and opt.curvature.aux_optimizer.param_groups[0]["lr"] == 3e-4
    assert type(opt.curvature.blocks[0].structure).__name__ == "KronSumQ"


@pytest.mark.parametrize(
    ("name", "cls"), [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)]
)
def test_baselines_build_from_the_same_format(name, cls):
    cfg = run_config(name=name, lr=0.01)
    opt = cfg.build_optimizer(nn.Linear(3, 4))
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.01
    with pytest.raises(ValueError, match="not 'fishleg'"):
        FishLeg.from_config(nn.Linear(3, 4), cfg, likelihood=CategoricalLikelihood())


def test_run_config_defaults_to_fishleg_and_adamw_to_its_usual_settings():
    assert RunConfig.model_validate({"workload": {"name": "x"}}).optimizer == FishLegConfig()
    assert (AdamWConfig().lr, AdamWConfig().weight_decay) == (1e-3, 1e-2)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (
            {"workload": {"name": "x"}, "optimizer": {"name": "fishleg", "lr": -1}},
            ["optimizer.lr", "greater than 0", "-1"],
        ),
        (
            {"workload": {"name": "x"}, "optimizer": {"name": "fishleg", "q_structure": "full"}},
            ["optimizer.q_structure", "kron_sum"],
        ),
        ({"workload": {"name": "x"}, "optimizer": {"name": "lbfgs"}}, ["optimizer", "fishleg", "adamw"]),
        (
            {"workload": {"name": "x"}, "optimizer": {"name": "adamw", "aux_lr": 1}},
            ["holds fishleg's settings (aux_lr)", "set optimizer.name back to fishleg"],
        ),
        ({"workload": {"name": "x"}, "optimizer": {"name": "adamw", "lrr": 1}}, ["optimizer.lrr", "unknown key"]),
        ({"optimizer": {"name": "adamw"}}, ["give exactly one of workload:", "trainable:"]),
        ({"workload": {"name": "x"}, "training": {"epochs": "ten"}}, ["training.epochs", "integer"]),
    ],
)
def test_invalid_files_name_the_key_and_allowed_values(tmp_path, data, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workload:\n  name: digits\n optimizer: [\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_run_config(path)


def test_a_config_tuned_for_fishleg_loaded_for_another_optimizer_says_so(tmp_path):
    path = tmp_path / "best_config.yaml"
    path.write_text(
        "workload: {name: digits_classifier}\noptimizer: {name: fishleg, lr: 0.5, aux_lr: 0.001, damping: 0.01}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_run_config(path, overrides=parse_overrides(["optimizer.name=adamw"], "test"))
    message = str(err.value)
    assert message.startswith(f"{path} with optimizer.name=adamw: this config was tuned for fishleg, not adamw")
    assert "holds fishleg's settings (aux_lr, damping)" in message
    assert "Tune adamw with its own sweep" in message and "Did you mean" not in message and "unknown key" not in message
