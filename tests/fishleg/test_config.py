"""FishLegConfig and fishleg.load_config: one schema, read from a run config's optimizer
section or a bare mapping, with errors naming the key; and the constructor it documents."""

import inspect
import pydoc

import pytest
import yaml
from torch import nn

from fishleg import ConfigError, FishLeg, FishLegConfig, load_config


def write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_reads_the_optimizer_section_or_a_bare_mapping(tmp_path):
    run = {"workload": {"name": "x"}, "optimizer": {"name": "fishleg", "lr": 0.02, "q_structure": "diag"}}
    assert load_config(write(tmp_path, run)) == FishLegConfig(lr=0.02, q_structure="diag")
    assert load_config(write(tmp_path, {"lr": 0.3, "damping": 0.1})) == FishLegConfig(lr=0.3, damping=0.1)
    assert load_config(write(tmp_path, {"workload": {"name": "x"}, "optimizer": None})) == FishLegConfig()


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"workload": {"name": "x"}, "optimizer": {"name": "fishleg", "lr": -1}}, ["optimizer.lr", "greater than 0"]),
        ({"optimizer": {"name": "adamw", "lr": 0.1}}, ["optimizer.name", "'adamw', not 'fishleg'"]),
        ({"q_structure": "full"}, ["q_structure", "kron_sum"]),
        ({"lr": 0.1, "colour": "red"}, ["colour", "unknown key"]),
        ([1, 2], ["expected a mapping"]),
        ({"step_rule": "quadratic", "beta": 0.5}, ["beta 0.5 has no role with step_rule 'quadratic'", "leave beta"]),
        ({"graft_eps": 1e-6}, ["graft_eps 1e-06: an option of the graft", "at graft_eps 1e-08 or set graft to one of"]),
        ({"partner_betas": [0.8, 0.9]}, ["partner_betas (0.8, 0.9): an option of the partner", "set partner: adamw"]),
        (
            {"q_structure": "kron", "kron_sum_rank": 3},
            ["kron_sum_rank 3: an option of a q_structure of several terms", "set q_structure to one of ['kron_sum']"],
        ),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, data, fragments):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_files_written_with_quadratic_step_load_as_its_step_rule(tmp_path):
    """Exported configs list every field, beta 0.9 included: they keep loading."""
    assert load_config(write(tmp_path, {"quadratic_step": True, "beta": 0.9})).step_rule == "quadratic"
    assert load_config(write(tmp_path, {"quadratic_step": False})).step_rule == "momentum"


def test_defaults_are_the_reference_implementations():
    cfg = FishLegConfig()
    assert (cfg.lr, cfg.beta, cfg.weight_decay, cfg.aux_lr, cfg.damping, cfg.update_aux_every, cfg.init_scale) == (
        5e-2,
        0.9,
        1e-5,
        1e-4,
        0.5,
        10,
        1.0,
    )


def test_constructor_takes_every_hyperparameter_keyword_only_with_the_config_defaults():
    params = inspect.signature(FishLeg).parameters
    fields = {k: f for k, f in FishLegConfig.model_fields.items() if k != "name"}
    for name, field_info in fields.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == field_info.default, name
        assert params[name].annotation != inspect.Parameter.empty, name
    assert set(params) - {"model", "likelihood", "aux_data", "config", "seed"} == set(fields)


def test_keywords_override_a_given_config_and_are_validated_by_it():
    model = nn.Linear(3, 2)
    opt = FishLeg(model, "categorical", "manual", FishLegConfig(lr=0.2, damping=0.7), damping=0.3)
    assert opt.config.lr == 0.2 and opt.param_groups[0]["lr"] == 0.2
    assert opt.config.damping == 0.3 and opt.param_groups[0]["damping"] == 0.3
    given = FishLegConfig(lr=0.2)
    assert FishLeg(model, "categorical", "manual", given).config is given  # validated once, where it was made
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['dampng'\].*damping"):
        FishLeg(model, "categorical", aux_data="manual", dampng=0.3)
    with pytest.raises(ValueError, match=r"lr: Input should be greater than 0 \(got -1\)"):
        FishLeg(model, "categorical", aux_data="manual", lr=-1)


def test_help_lists_every_hyperparameter_with_its_meaning_and_default():
    text = pydoc.render_doc(FishLeg, renderer=pydoc.plaintext)
    for name, field_info in FishLegConfig.model_fields.items():
        if name == "name":
            continue
        assert field_info.description, name
        assert f"{name} = {field_info.default!r}: {field_info.description}" in text, name
