"""Sweep space → Optuna: every sampler drives the define-by-run space; conditions hold."""

import optuna
import pytest

from tuning.errors import ConfigError
from tuning.sweep.space import DefineByRun, make_sampler
from tuning.sweep.spec import SweepSpec, apply_params

SPACE = {
    "optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
    "optimizer.update_aux_every": {"type": "int", "low": 1, "high": 20, "step": 1},
    "optimizer.q_structure": {"type": "categorical", "choices": ["kron", "kron_sum"]},
    "optimizer.kron_sum_rank": {"type": "int", "low": 2, "high": 3, "when": {"optimizer.q_structure": "kron_sum"}},
}


def spec(sampler, space=SPACE):
    return SweepSpec.model_validate(
        {"workload": {"name": "digits_classifier"}, "space": space, "search": {"sampler": sampler, "seed": 0}}
    )


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "random", "qmc"])
def test_every_sampler_samples_the_conditional_space(sampler):
    s = spec(sampler)
    study = optuna.create_study(sampler=make_sampler(s))
    fn = DefineByRun(s.space)
    for i in range(6):
        trial = study.ask()
        fn(trial)
        params = trial.params
        assert 1e-3 <= params["optimizer.lr"] <= 1.0
        assert ("optimizer.kron_sum_rank" in params) == (params["optimizer.q_structure"] == "kron_sum")
        study.tell(trial, float(i))


def test_grid_sampler_enumerates_stepped_values():
    grid = {
        "optimizer.update_aux_every": {"type": "int", "low": 5, "high": 15, "step": 5},
        "optimizer.q_structure": {"type": "categorical", "choices": ["diag", "kron"]},
    }
    base = spec("grid", grid)
    s = base.model_copy(update={"search": base.search.model_copy(update={"num_samples": 6})})
    study = optuna.create_study(sampler=make_sampler(s))
    fn = DefineByRun(s.space)
    seen = set()
    for i in range(6):
        trial = study.ask()
        fn(trial)
        seen.add((trial.params["optimizer.update_aux_every"], trial.params["optimizer.q_structure"]))
        if i < 5:
            study.tell(trial, 0.0)
            continue
        with pytest.raises(RuntimeError, match="Study.stop"):  # the grid is done: it stops the study
            study.tell(trial, 0.0)
    assert seen == {(k, q) for k in (5, 10, 15) for q in ("diag", "kron")}
    with pytest.raises(ConfigError, match="only 6 points"):
        make_sampler(base)  # num_samples 20 > 6 grid points


def test_apply_params_sets_dotted_keys_without_touching_the_base():
    base = {"optimizer": {"name": "fishleg", "lr": 0.05}}
    out = apply_params(base, {"optimizer.lr": 0.1, "optimizer.q_structure": "diag"})
    assert out["optimizer"] == {"name": "fishleg", "lr": 0.1, "q_structure": "diag"}
    assert base["optimizer"]["lr"] == 0.05
