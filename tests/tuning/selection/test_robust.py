"""Seed re-run bookkeeping: diverged seeds, ranking, mean curves and time to target."""

import math

from tuning.compare import time_to_target
from tuning.selection.robust import SeedRuns, fresh_seeds


def curve(values, seconds=1.0):
    return [{"epoch": i + 1, "val_loss": v, "epoch_time_s": seconds} for i, v in enumerate(values)]


def test_a_diverged_seed_ranks_the_config_last_and_leaves_the_curves_of_the_others():
    good = SeedRuns({"lr": 0.1}, [1, 2], [curve([3, 2, 1]), curve([3, 2, 1.2])], [False, False])
    bad = SeedRuns({"lr": 9.0}, [1, 2], [curve([3, 0.5, 0.1]), curve([3])], [False, True])
    assert math.isnan(bad.finals("val_loss")[1]) and math.isnan(bad.mean("val_loss"))
    assert math.isnan(bad.std("val_loss")) and good.std("val_loss") > 0  # no crash on the NaN
    assert min([bad, good], key=lambda r: r.rank_key("val_loss", "min")) is good
    assert bad.mean_curve("val_loss") == [3, 0.5, 0.1]
    assert good.mean("val_loss") == 1.1 and good.mean_curve("val_loss") == [3, 2, 1.1]


def test_time_to_target_uses_the_seed_mean_curve():
    runs = SeedRuns({}, [1, 2], [curve([3, 2, 1], 2.0), curve([3, 1, 1], 4.0)], [False, False])
    assert time_to_target(runs, "val_loss", "min", 1.5) == (2, 6.0)
    assert time_to_target(runs, "val_loss", "min", 0.5) == (None, None)
    assert time_to_target(runs, "val_loss", "max", 2.5) == (1, 3.0)


def test_fresh_seeds_never_reuse_the_sweep_seed():
    assert fresh_seeds(0, 3) == [1000, 1001, 1002]
