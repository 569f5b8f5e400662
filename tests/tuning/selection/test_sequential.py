"""--seeds auto's rule: the looks fixed in advance, the 5% shared over them, and seeds added
only to a level leader and runner-up (a unit test: the re-training is replaced by a table of
per-seed values)."""

import pytest

from tuning.selection import sequential
from tuning.selection.robust import SeedRuns
from tuning.selection.sequential import SeedRounds, separate


def test_the_looks_and_each_looks_confidence():
    assert (SeedRounds().looks, SeedRounds().confidence) == (4, pytest.approx(1 - 0.05 / 4))  # 3, 5, 7, 9
    assert SeedRounds(start=3, most=3).looks == 1 and SeedRounds(start=3, most=3).confidence == pytest.approx(0.95)
    assert SeedRounds(start=3, most=6, step=2).looks == 3  # 3, 5, 6


def runs(values, lr):
    n = len(values)
    return SeedRuns({"optimizer.lr": lr}, list(range(n)), [[{"val_loss": v}] for v in values], [False] * n)


@pytest.fixture
def table(monkeypatch):
    """Each config's per-seed values as far as seeds go; add_seeds reads the next ones."""
    values = {}

    def add_seeds(spec, r, count, store):
        lr = r.params["optimizer.lr"]
        return runs([*r.finals("val_loss"), *values[lr][len(r.seeds) : len(r.seeds) + count]], lr)

    monkeypatch.setattr(sequential, "add_seeds", add_seeds)
    return values


def test_seeds_go_to_a_level_pair_until_it_separates_and_a_clear_leader_gets_none(table):
    table[1.0] = [1.0, 1.1, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # 0.2 apart: level at 3 seeds, not at 5
    table[2.0] = [1.2, 1.3, 1.1, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2]
    table[3.0] = [5.0, 5.1, 4.9]
    start = [runs(v[:3], lr) for lr, v in table.items()]
    out = separate([None] * 3, start, SeedRounds(), "val_loss", "min", lambda line: None, ["a", "b", "c"], None)
    assert [len(r.seeds) for r in out] == [5, 5, 3]  # one round separated them; c never grew
    clear = [runs([1.0, 1.01, 0.99], 1.0), runs([2.0, 2.01, 1.99], 2.0)]
    assert separate([None] * 2, clear, SeedRounds(), "val_loss", "min", print, ["a", "b"], None) == clear


def test_a_pair_that_stays_level_stops_at_the_most_seeds(table):
    table[1.0] = [1.0, 1.2, 0.8] * 3
    table[2.0] = [1.2, 1.0, 0.8] * 3
    start = [runs(v[:3], lr) for lr, v in table.items()]
    out = separate([None] * 2, start, SeedRounds(most=7), "val_loss", "min", lambda line: None, ["a", "b"], None)
    assert [len(r.seeds) for r in out] == [7, 7]
