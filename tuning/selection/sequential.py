"""More seeds where they decide something (`compare --seeds auto`): the leader and the runner-up
get seeds in rounds until the leader's interval against the runner-up excludes zero, or each
has the stated most.

The rule, and why it is sound: looking at the data after each round and stopping when the
interval first excludes zero would, with plain 95% intervals, call a winner far more often
than 5% of the time when there is none (every look is another chance). So the number of looks
is fixed in advance (a first round of `start` seeds, then `step` more per round up to `most`)
and each look's interval is at confidence 1 − 0.05/looks (Bonferroni): the chance that any look
calls a difference that is not there stays at most 5%. It costs some width against Pocock's or
O'Brien–Fleming's boundaries, and needs no table of them. Each side's chosen config is fixed
after the first round (chosen on `start` seeds, as the other sides'), so the extra seeds only
measure it, never re-choose it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tuning.selection.intervals import CONFIDENCE, LEVEL, difference
from tuning.selection.robust import SeedRuns, fresh_seeds, retrain_for
from tuning.selection.seed_store import SeedStore
from tuning.sweep.spec import SweepSpec

__all__ = ["SeedRounds", "add_seeds", "separate"]


@dataclass(frozen=True)
class SeedRounds:
    """`start` seeds for every side, then `step` more for the leader and the runner-up per
    round, up to `most` each."""

    start: int = 3
    most: int = 9
    step: int = 2

    @property
    def looks(self) -> int:
        """How many times the leader's interval is looked at, at most."""
        return 1 + math.ceil(max(0, self.most - self.start) / self.step)

    @property
    def confidence(self) -> float:
        """Each look's interval confidence: the 5% error shared over the looks."""
        return 1 - (1 - CONFIDENCE) / self.looks

    def describe(self) -> str:
        """The rule, as the verdict states it."""
        return (
            f"seeds added {self.step} at a time to the leader and the runner-up, from {self.start} up to "
            f"{self.most} each, until the leader's {100 * self.confidence:.4g}% interval against the runner-up "
            f"excludes 0 (Bonferroni over {self.looks} looks: at most a 5% chance of calling a difference "
            "that is not there)"
        )


def add_seeds(spec: SweepSpec, runs: SeedRuns, count: int, store: SeedStore) -> SeedRuns:
    """`runs` with `count` more fresh seeds of its config, trained at `spec`'s full budget (or
    read back from `store`)."""
    new = fresh_seeds(spec.training.seed, len(runs.seeds) + count)[len(runs.seeds) :]
    (more,) = retrain_for(spec, [runs.params], new, store)
    return replace(
        runs,
        seeds=[*runs.seeds, *more.seeds],
        curves=[*runs.curves, *more.curves],
        diverged=[*runs.diverged, *more.diverged],
        models=[*runs.models, *more.models],
    )


def separate(
    specs: Sequence[SweepSpec],
    best: Sequence[SeedRuns],
    rounds: SeedRounds,
    metric: str,
    mode: str,
    echo: Callable[[str], None],
    labels: Sequence[str],
    store: SeedStore,
) -> list[SeedRuns]:
    """Each side's chosen config's seed runs, with seeds added to the leader and the runner-up
    until the leader is separated from the runner-up or both have `rounds.most` seeds."""
    best = list(best)
    for look in range(1, rounds.looks + 1):  # never more looks than the confidence was shared over
        order = sorted(range(len(best)), key=lambda i: best[i].rank_key(metric, mode))
        leader, runner = order[0], order[1]
        d = difference(best[leader].finals(metric), best[runner].finals(metric), mode, rounds.confidence)
        growing = [i for i in (leader, runner) if len(best[i].seeds) < rounds.most]
        if d.verdict != LEVEL or not growing or look == rounds.looks:
            break
        echo(
            f"{labels[leader]} and {labels[runner]} are level after {len(best[leader].seeds)} and "
            f"{len(best[runner].seeds)} seeds: {rounds.step} more each"
        )
        for i in growing:
            best[i] = add_seeds(specs[i], best[i], min(rounds.step, rounds.most - len(best[i].seeds)), store)
    return best
