"""Learning-curve tables built from a tiny sweep file and read back: the start point first, one
run per config and seed, a build continued without repeating a run, values as trained."""

from tuning.replay.build import build_table, draw_configs, run_curve
from tuning.replay.table import load_table
from tuning.sweep.spec import SweepSpec
from tuning.training import Trainer

SPEC = SweepSpec.model_validate(
    {
        "name": "tiny",
        "workload": {"name": "digits_classifier", "hidden": [8]},
        "optimizer": {"name": "adamw"},
        "training": {"epochs": 2, "batch_size": 256, "seed": 5},
        "space": {
            "optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
            "optimizer.weight_decay": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
        },
        "search": {"points_to_evaluate": [{"optimizer.lr": 0.01, "optimizer.weight_decay": 1e-3}]},
    }
)


def test_draws_start_at_the_files_points_and_repeat_for_the_same_seed():
    draws = draw_configs(SPEC, 4, seed=3)
    assert draws[0] == {"optimizer.lr": 0.01, "optimizer.weight_decay": 1e-3}
    assert draws == draw_configs(SPEC, 4, seed=3) != draw_configs(SPEC, 4, seed=4)
    assert all(1e-3 <= d["optimizer.lr"] <= 0.1 for d in draws)


def test_a_table_is_built_continued_and_read_back(tmp_path):
    path = tmp_path / "tiny.csv"
    lines = []
    build_table(SPEC, path, configs=2, seeds=1, echo=lines.append)
    build_table(SPEC, path, configs=3, seeds=2, echo=lines.append)  # adds config 2 on seed 5, all on seed 6
    assert len(lines) == 2 + 4
    table = load_table(path)
    assert table.meta["budget"] == 2 and table.meta["metric"] == "val_loss" and table.meta["sweep"] == "tiny"
    assert table.done() == {(c, s) for c in range(3) for s in (5, 6)}
    assert table.params[0] == {"optimizer.lr": 0.01, "optimizer.weight_decay": 1e-3}
    assert table.params[1] == draw_configs(SPEC, 3, seed=0)[1]
    for curves in table.curves.values():
        assert all(len(c.values) == 2 and not c.diverged and all(s > 0 for s in c.seconds) for c in curves)
    first, second = table.curves[0]
    assert first.values != second.values  # another seed, another run
    assert table.quality(0) == (first.final + second.final) / 2
    trainer = Trainer(SPEC.config_for(table.params[0]))
    assert first.values == tuple(trainer.run_epoch()["val_loss"] for _ in range(2))  # the file's seed, 5


def test_later_seeds_train_only_the_best_configs_of_the_first(tmp_path):
    path = tmp_path / "tiny.csv"
    build_table(SPEC, path, configs=3, seeds=2, top=1, echo=lambda line: None)
    table = load_table(path)
    best = min(range(3), key=lambda i: table.curves[i][0].final)
    assert table.done() == {(0, 5), (1, 5), (2, 5), (best, 6)}


def test_a_diverged_run_ends_with_the_value_a_sweep_tells_optuna():
    blown = SPEC.model_copy(update={"optimizer": {"name": "sgd", "lr": 1e30}})
    config = blown.config_for({})
    curve = run_curve(config, "val_loss", 7)
    assert curve.diverged and curve.config == 7 and len(curve.values) == len(curve.seconds) == 1
    assert curve.final == Trainer(config).evaluate()["val_loss"]  # the untrained model's, as diverged_report
