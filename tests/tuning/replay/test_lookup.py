"""The lookups a replay answers suggestions with: the nearest recorded config on the log
scale, and a Gaussian process fitted to a smooth hand-made table, whose predictions, seed noise
and divergences are checked against the values the table was made from."""

import math
import random

import pytest

from tuning.replay.lookup import Nearest, Surrogate, nearest
from tuning.replay.table import Curve, Table
from tuning.sweep.spec import ParamSpec

SPACE = {"optimizer.lr": ParamSpec(type="float", low=1e-3, high=1.0, log=True)}


def bowl(lr: float) -> float:
    """The final value the smooth table records: lowest (0.1) at lr 1e-2, on the log scale."""
    return 0.1 + 0.2 * (math.log10(lr) + 2) ** 2


def smooth_table(lrs: list[float], seeds: dict[int, float] | None = None) -> Table:
    """Config i at lrs[i], two epochs (first 0.5 above the last), one second each; `seeds` adds
    a second seed to config i with its final value scaled by the given factor."""
    t = Table(meta={"metric": "val_loss", "mode": "min", "budget": 2, "keys": ["optimizer.lr"]})
    for i, lr in enumerate(lrs):
        t.params[i] = {"optimizer.lr": lr}
        t.curves[i] = [Curve(i, 0, (bowl(lr) + 0.5, bowl(lr)), (1.0, 1.0))]
    for i, factor in (seeds or {}).items():
        final = bowl(lrs[i]) * factor
        t.curves[i].append(Curve(i, 1, (final + 0.5, final), (1.0, 1.0)))
    return t


GRID = [10 ** (-3 + k / 4) for k in range(13)]  # 1e-3 ... 1, a quarter decade apart


def test_a_suggestion_off_the_table_gets_the_nearest_config_on_the_log_scale():
    t = smooth_table([0.001, 0.01, 0.1, 1.0])
    assert nearest(SPACE, t, {"optimizer.lr": 0.02}) == 1  # log-nearer 0.01 than 0.1
    assert nearest(SPACE, t, {"optimizer.lr": 0.5}) == 3
    curve, quality = Nearest(SPACE, t).run({"optimizer.lr": 0.02}, random.Random(0))
    assert curve.config == 1 and quality == pytest.approx(0.1)


def test_the_surrogate_interpolates_between_recorded_configs():
    t = smooth_table(GRID[::2])  # every half decade: 1e-3, 3.2e-3, 1e-2, ...
    surrogate = Surrogate(SPACE, t, samples=64)
    for lr in GRID[1::2]:  # halfway between two recorded configs
        curve, quality = surrogate.run({"optimizer.lr": lr}, random.Random(0))
        neighbour = t.quality(curve.config)
        assert abs(quality - bowl(lr)) < abs(neighbour - bowl(lr)) / 2  # nearer the truth than the neighbour
        assert curve.values[-1] == pytest.approx(quality)  # no seed noise recorded, none added
        assert curve.seconds == (1.0, 1.0)
    assert surrogate.best() == pytest.approx(0.1, abs=0.01)


def test_the_surrogate_adds_a_recorded_seed_deviation():
    # config 4 (lr 1e-2) also on a second seed with its final value 1.2 times the first:
    # on the log scale each seed lies ln(1.2)/2 from their mean, one seed's spread √2 times that
    t = smooth_table(GRID[::2], seeds={4: 1.2})
    surrogate = Surrogate(SPACE, t, samples=64)
    spread = math.log(1.2) / 2 * math.sqrt(2)
    ratios = set()
    for seed in range(20):
        curve, quality = surrogate.run({"optimizer.lr": 0.05}, random.Random(seed))
        ratios.add(round(math.log(curve.values[-1] / quality), 9))
    assert ratios == {round(-spread, 9), round(spread, 9)}


def test_the_surrogate_diverges_where_the_nearest_recorded_run_did():
    t = smooth_table(GRID[::2])
    t.curves[6] = [Curve(6, 0, (0.9,), (1.0,), diverged=True)]  # lr 1 diverged after one epoch
    surrogate = Surrogate(SPACE, t, samples=64)
    curve, _ = surrogate.run({"optimizer.lr": 0.8}, random.Random(0))
    assert curve == t.curves[6][0]


def test_fidelity_scores_predictions_of_held_out_configs():
    fidelity = Surrogate(SPACE, smooth_table(GRID), samples=0).fidelity(folds=4)
    assert fidelity["spearman"] > 0.9 and fidelity["rmse"] < 0.05  # the bowl spans 0.1 to 0.9
    flat = smooth_table(GRID)
    for i in range(len(GRID)):  # values unrelated to lr: nothing to predict from
        flat.curves[i] = [Curve(i, 0, (1.0, 0.2 + 0.05 * ((7 * i) % 13)), (1.0, 1.0))]
    assert Surrogate(SPACE, flat, samples=0).fidelity(folds=4)["spearman"] < 0.5
