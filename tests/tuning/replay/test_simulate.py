"""A sweep replayed on a small hand-written table, against timelines worked out by hand: the
file's start points in order, FIFO and ASHA (Ray's rung rule: stop below the rung's median),
one worker and two, a divergence, a warm start."""

import math

import pytest

from tuning.replay.simulate import replay, warm_from
from tuning.replay.table import Curve, Table, merge
from tuning.sweep.spec import SweepSpec

LRS = [0.001, 0.01, 0.1, 1.0]


def table(curves: list[list[float | None]], diverged: int | None = None, seconds: float = 1.0) -> Table:
    """Config i has lr LRS[i] and the given per-epoch values on seed 0, each epoch `seconds`."""
    t = Table(meta={"metric": "val_loss", "mode": "min", "budget": 2, "keys": ["optimizer.lr"]})
    for i, values in enumerate(curves):
        t.params[i] = {"optimizer.lr": LRS[i]}
        t.curves[i] = [Curve(i, 0, tuple(values), (seconds,) * len(values), diverged=i == diverged)]
    return t


def spec(scheduler: dict, workers: int = 1, points: list[float] = LRS) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "workload": {"name": "digits_classifier"},
            "optimizer": {"name": "adamw"},
            "training": {"epochs": 2},
            "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
            "search": {
                "sampler": "random",
                "max_concurrent": workers,
                "points_to_evaluate": [{"optimizer.lr": lr} for lr in points],
            },
            "scheduler": scheduler,
        }
    )


def test_fifo_with_one_worker_runs_the_start_points_back_to_back():
    t = table([[0.9, 0.5], [0.8, 0.3], [1.0, 0.4], [0.5, 0.1]])
    trace = replay(spec({"type": "none"}), t, seed=0, trials=4)
    assert trace.trials == 4
    # trial k ends at 2(k+1) s; the choice improves at configs 0, 1 and 3
    assert trace.events == [(2.0, 0, 0.5, 0.5), (4.0, 1, 0.3, 0.3), (8.0, 3, 0.1, 0.1)]
    assert trace.time_to(0.35, 1.0) == 4.0
    assert trace.time_to(0.05, 1.0) is None
    assert trace.quality_at(1.0) is None and trace.quality_at(5.0) == 0.3


def test_asha_stops_a_trial_below_the_rung_median():
    # rung at epoch 1, reduction factor 2: trial 2's 1.0 is below the median of (0.9, 0.8, 1.0) → stopped
    t = table([[0.9, 0.5], [0.8, 0.3], [1.0, 0.4], [0.5, 0.1]])
    trace = replay(spec({"type": "asha", "grace_period": 1, "reduction_factor": 2}), t, seed=0, trials=4)
    assert trace.complete == [({"optimizer.lr": LRS[i]}, v) for i, v in ((0, 0.5), (1, 0.3), (3, 0.1))]
    assert trace.ended == [0.5, 0.3, 0.3, 0.1]
    assert trace.events[-1] == (7.0, 3, 0.1, 0.1)  # 2 + 2 + 1 (stopped) + 2


def test_two_workers_share_the_clock():
    t = table([[0.9, 0.5], [0.8, 0.3], [1.0, 0.4], [0.5, 0.1]])
    trace = replay(spec({"type": "none"}, workers=2), t, seed=0, trials=4)
    # configs 0 and 1 both end at 2 s, 2 and 3 at 4 s
    assert [(e[0], e[1]) for e in trace.events] == [(2.0, 0), (2.0, 1), (4.0, 3)]


def test_the_clock_stops_at_the_horizon():
    t = table([[0.9, 0.5], [0.8, 0.3], [1.0, 0.4], [0.5, 0.1]])
    trace = replay(spec({"type": "none"}), t, seed=0, seconds=5.0)
    assert [e[1] for e in trace.events] == [0, 1]


def test_a_divergence_is_never_the_choice_and_ends_the_trial():
    t = table([[0.9, 0.5], [0.7, 2.3], [1.0, 0.4], [0.5, 0.1]], diverged=1)
    trace = replay(spec({"type": "none"}), t, seed=0, trials=4)
    assert [p["optimizer.lr"] for p, _ in trace.complete] == [LRS[0], LRS[2], LRS[3]]
    assert trace.events[1] == (6.0, 2, 0.4, 0.4)


def test_quality_is_the_seed_mean_of_the_chosen_config():
    t = table([[0.9, 0.5], [0.8, 0.3]])
    t.curves[1].append(Curve(1, 1, (0.8, 0.5), (1.0, 1.0)))
    assert t.quality(1) == pytest.approx(0.4)
    assert t.best() == (1, pytest.approx(0.4))
    assert t.worst() == pytest.approx(0.5)
    assert t.seed_noise() == pytest.approx(math.sqrt(0.02))  # variance of (0.3, 0.5)


def test_a_finished_replay_warm_starts_the_next():
    t = table([[0.9, 0.5], [0.8, 0.3], [1.0, 0.4], [0.5, 0.1]])
    earlier = replay(spec({"type": "none"}), t, seed=0, trials=4)
    warm = warm_from(earlier, spec({"type": "none"}), "adamw")
    finals = (0.5, 0.3, 0.4, 0.1)
    assert [(p, v) for _, p, v in warm.trials] == [({"optimizer.lr": lr}, v) for lr, v in zip(LRS, finals)]
    later = replay(spec({"type": "none"}, points=[]), t, seed=0, trials=2, warm=warm)
    assert later.trials == 2


def test_tables_of_the_same_space_merge_with_configs_numbered_on():
    a, b = table([[0.9, 0.5], [0.8, 0.3]]), table([[0.7, 0.2]])
    b.params[0] = {"optimizer.lr": 0.05}
    merged = merge([a, b])
    assert merged.params == {0: {"optimizer.lr": 0.001}, 1: {"optimizer.lr": 0.01}, 2: {"optimizer.lr": 0.05}}
    assert [c.config for c in merged.curves[2]] == [2] and merged.best() == (2, 0.2)
    with pytest.raises(ValueError, match="budget"):
        merge([a, Table(meta={**a.meta, "budget": 3})])
