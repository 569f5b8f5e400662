"""The verdict's statistics: Welch's interval on a hand-computed case, and the words it allows."""

import math

import pytest

from tuning.selection.intervals import BETTER, LEVEL, WORSE, difference


def test_welchs_interval_matches_the_hand_computed_one():
    # means 1.1 and 1.5, both sample variances 0.01 over 3 seeds: se = √(0.01/3 + 0.01/3) = 0.08165,
    # Welch's df = (2·0.01/3)² / (2·(0.01/3)²/2) = 4, t(0.975, 4) = 2.776445 (tables).
    d = difference([1.0, 1.1, 1.2], [1.5, 1.4, 1.6], "min")
    half = 2.776445 * math.sqrt(0.02 / 3)
    assert d.difference == pytest.approx(-0.4)
    assert (d.ci_low, d.ci_high) == pytest.approx((-0.4 - half, -0.4 + half), abs=1e-6)
    assert d.verdict == BETTER and "better" in d.describe() and "[-0.627, -0.173]" in d.describe()
    assert difference([1.5, 1.4, 1.6], [1.0, 1.1, 1.2], "min").verdict == WORSE
    assert difference([1.0, 1.1, 1.2], [1.5, 1.4, 1.6], "max").verdict == WORSE  # accuracy: lower is worse


def test_level_when_the_interval_holds_zero_or_cannot_be_had():
    assert difference([1.0, 1.2, 1.4], [1.1, 1.3, 1.2], "min").verdict == LEVEL
    same = difference([0.3, 0.5, 0.4], [0.3, 0.5, 0.4], "min")  # the same seeds' values: a symmetric interval
    assert same.difference == 0.0 and same.ci_low == pytest.approx(-same.ci_high) and same.verdict == LEVEL
    flat = difference([0.4, 0.4], [0.4, 0.4], "min")  # no spread at all: a zero-width interval at 0
    assert (flat.difference, flat.ci_low, flat.ci_high, flat.verdict) == (0.0, 0.0, 0.0, LEVEL)
    one = difference([0.1], [0.9], "min")
    assert one.verdict == LEVEL and one.why == "one seed: no interval" and math.isnan(one.ci_low)
    assert one.to_dict()["ci_low"] is None


def test_a_diverged_seed_is_worse_than_none():
    assert difference([0.1, math.nan], [0.5, 0.6], "min").verdict == WORSE
    assert difference([0.5, 0.6], [0.1, math.nan], "min").verdict == BETTER
    assert difference([math.nan, 0.1], [0.5, math.nan], "min").verdict == LEVEL
