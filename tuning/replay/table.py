"""Recorded learning-curve tables: configs of a sweep file's space, each trained to the full
budget on one or more seeds, with the metric and seconds of every epoch.

A search strategy replayed against a table (`tuning.replay.simulate`) costs seconds instead of
hours, so strategies can be compared over many repetitions, as the hyperparameter-search field
does with tabulated benchmarks (LCBench, YAHPO, Syne Tune's blackbox repository).

The file is CSV, one row per epoch (`config, seed, epoch, value, seconds, diverged`, then one
column per space key), after one `#` line of JSON that says what was recorded
(`pandas.read_csv(path, comment="#")` reads the rows). A run that diverged ends with a row
flagged `diverged`: its value is what a sweep tells Optuna for it (the untrained model's, see
`tuning.sweep.trainable.diverged_report`), or empty where the sweep fails such a trial."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning.run.overrides import parse_overrides
from tuning.sweep.spec import Scalar, SweepSpec, load_sweep

__all__ = ["Curve", "Table", "append_curve", "load_table", "merge", "recorded_spec", "start_table"]

COLUMNS = ("config", "seed", "epoch", "value", "seconds", "diverged")


@dataclass(frozen=True)
class Curve:
    """One config trained on one seed: the metric and seconds of each epoch it ran. A curve
    shorter than the budget diverged at its last epoch; `values[-1]` is then what a sweep
    reports for it (None: the trial fails)."""

    config: int
    seed: int
    values: tuple[float | None, ...]
    seconds: tuple[float, ...]
    diverged: bool = False

    @property
    def final(self) -> float | None:
        """The last epoch's value (what a sweep reports for the run)."""
        return self.values[-1] if self.values else None


@dataclass
class Table:
    """What a table file holds. `params[i]` is config i's sampled values (dotted space keys);
    `curves[i]` its curves, one per seed recorded."""

    meta: dict[str, Any]
    params: dict[int, dict[str, Scalar]] = field(default_factory=dict)
    curves: dict[int, list[Curve]] = field(default_factory=dict)

    @property
    def budget(self) -> int:
        """Epochs of a full run."""
        return int(self.meta["budget"])

    @property
    def sign(self) -> float:
        """+1 where lower is better, -1 where higher is."""
        return 1.0 if self.meta["mode"] == "min" else -1.0

    def full(self, config: int) -> list[Curve]:
        """Config's curves that ran the whole budget."""
        return [c for c in self.curves.get(config, []) if not c.diverged and len(c.values) >= self.budget]

    def quality(self, config: int) -> float | None:
        """Config's final value averaged over its seeds; None where a seed did not finish."""
        curves = self.curves.get(config, [])
        if not curves or len(self.full(config)) < len(curves):
            return None
        return statistics.fmean(c.final for c in curves)  # type: ignore[misc]

    def _scored(self) -> list[tuple[float, int]]:
        return [(q, i) for i in self.curves if (q := self.quality(i)) is not None]

    def best(self) -> tuple[int, float]:
        """The config of the best seed-averaged final value, and that value."""
        q, i = min(self._scored(), key=lambda s: self.sign * s[0])
        return i, q

    def worst(self) -> float:
        """The worst seed-averaged final value: a search's standing before its first full run."""
        return max(self._scored(), key=lambda s: self.sign * s[0])[0]

    def seed_noise(self, top: int = 10) -> float:
        """The seed-to-seed standard deviation of the final value, pooled over the `top` best
        configs with two or more seeds: how close to the best counts as "as good"."""
        multi = [i for i in self.curves if len(self.full(i)) >= 2 and self.quality(i) is not None]
        multi.sort(key=lambda i: self.sign * self.quality(i))  # type: ignore[operator]
        variances = [statistics.variance([c.final for c in self.full(i)]) for i in multi[:top]]  # type: ignore[misc]
        if not variances:
            raise ValueError("the table has no config with two finished seeds, so no seed noise")
        return math.sqrt(statistics.fmean(variances))

    def done(self) -> set[tuple[int, int]]:
        """(config, seed) of every run recorded."""
        return {(c.config, c.seed) for curves in self.curves.values() for c in curves}


def recorded_spec(table: Table, extra: Sequence[str] = ()) -> SweepSpec:
    """The sweep file the table was recorded from, with the overrides it was recorded with, then
    `extra` (KEY=VALUE, as on the command line)."""
    source = Path(table.meta["source"])
    return load_sweep(source, overrides=parse_overrides([*table.meta.get("overrides", []), *extra], str(source)))


def start_table(path: Path, meta: dict[str, Any], keys: list[str]) -> None:
    """An empty table file (its `#` line and header) unless one is there already."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        f.write("# " + json.dumps({**meta, "keys": keys}) + "\n")
        csv.writer(f).writerow([*COLUMNS, *keys])


def append_curve(path: Path, curve: Curve, params: dict[str, Scalar]) -> None:
    """Add a finished curve's rows (written whole, so a killed build loses only the run in hand)."""
    keys = _read_meta(path)["keys"]
    rows = [
        [curve.config, curve.seed, epoch, "" if value is None else repr(value), repr(seconds)]
        + [int(curve.diverged and epoch == len(curve.values))]
        + ["" if params.get(k) is None else params[k] for k in keys]
        for epoch, (value, seconds) in enumerate(zip(curve.values, curve.seconds, strict=True), start=1)
    ]
    with path.open("a", newline="") as f:
        csv.writer(f).writerows(rows)


def _read_meta(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return json.loads(f.readline().removeprefix("# "))


def _parse(text: str) -> Scalar | None:
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="") as f:
        f.readline()
        yield from csv.DictReader(f)


def load_table(path: Path) -> Table:
    """Read a table file back."""
    table = Table(meta=_read_meta(path))
    runs: dict[tuple[int, int], list[dict[str, str]]] = {}
    for row in _rows(path):
        runs.setdefault((int(row["config"]), int(row["seed"])), []).append(row)
    for (config, seed), rows in sorted(runs.items()):
        rows.sort(key=lambda r: int(r["epoch"]))
        table.params[config] = {k: v for k in table.meta["keys"] if (v := _parse(rows[0][k])) is not None}
        table.curves.setdefault(config, []).append(
            Curve(
                config=config,
                seed=seed,
                values=tuple(None if r["value"] == "" else float(r["value"]) for r in rows),
                seconds=tuple(float(r["seconds"]) for r in rows),
                diverged=rows[-1]["diverged"] == "1",
            )
        )
    return table


def merge(tables: list[Table]) -> Table:
    """One table of several recorded over the same space, budget and metric (e.g. a sub-space
    recorded on its own, so a strategy that searches only that sub-space finds its configs),
    configs numbered on from the first's."""
    first = tables[0]
    same = ("metric", "mode", "budget", "keys")
    for other in tables[1:]:
        if any(other.meta[k] != first.meta[k] for k in same):
            raise ValueError(f"tables differ in {[k for k in same if other.meta[k] != first.meta[k]]}")
    merged = Table(meta=dict(first.meta))
    for table in tables:
        offset = max(merged.curves, default=-1) + 1
        for config, curves in table.curves.items():
            merged.params[offset + config] = table.params[config]
            merged.curves[offset + config] = [dataclasses.replace(c, config=offset + config) for c in curves]
    return merged
