"""comparison.html: a comparison's verdict, its seed-band curves against epochs and seconds,
the table of each side's chosen config with its difference from the leader, and what the
learnt Q adds to each FishLeg side (its ablations)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from tuning.report.figures import Band, bands
from tuning.report.page import Cell, Page, fmt
from tuning.selection.ablation import Ablation
from tuning.selection.intervals import Difference
from tuning.selection.robust import SeedRuns

__all__ = ["comparison_page", "held_out_metric"]


def held_out_metric(metric: str) -> str:
    """The test split's counterpart of a validation metric: val_loss → test_loss."""
    return "test_" + metric.removeprefix("val_").removeprefix("train_")


def _bands(titles: Sequence[str], best: Sequence[SeedRuns], metric: str, axis: str) -> list[Band]:
    """Each side's best config: the seed-mean curve against epochs or seconds, with the band
    between the lowest and highest seed."""
    out = []
    for title, runs in zip(titles, best):
        per_seed = [[row[metric] for row in c] for c in runs.complete_curves()]
        if not per_seed:
            continue
        mean = runs.mean_curve(metric)
        x = list(range(1, len(mean) + 1)) if axis == "epochs" else list(accumulate(runs.mean_curve("epoch_time_s")))
        low, high = [min(v) for v in zip(*per_seed)], [max(v) for v in zip(*per_seed)]
        out.append(Band(f"{title}, {len(per_seed)} seeds", x, mean, low, high))
    return out


def _reached(r: dict[str, Any]) -> str:
    return "never" if r["epochs"] is None else f"{r['epochs']} ep, {r['seconds']:.1f} s"


def comparison_page(
    titles: list[str],
    labels: list[str],
    best: list[SeedRuns],
    versus: list[dict[str, Difference]],
    ablated: list[list[Ablation]],
    summary: dict,
) -> str:
    """comparison.html: the verdict, the curves against epochs and seconds (seed bands), the table."""
    metric = summary["metric"]
    page = Page(f"compare {' vs '.join(titles)}")
    page.heading(" vs ".join(titles), 1)
    page.text(summary["verdict"])
    for axis, title in (("epochs", "epoch"), ("seconds", "wall-clock seconds (seed mean)")):
        page.heading(f"{metric} against {axis}")
        page.figure(f"vs_{axis}", bands(_bands(titles, best, metric, axis), title, metric))
    page.heading("Best config of each sweep")
    test_name = held_out_metric(metric)
    leader = titles[labels.index(summary["leader"])]
    rows = []
    for title, label, pair in zip(titles, labels, versus):
        b = summary["sides"][label]["best"]
        test = b["test"].get(test_name)
        reach = ", ".join(f"{other}: {_reached(r)}" for other, r in b["reach"].items())
        cells = [
            Cell(title),
            Cell(f"{fmt(b['mean'])} ± {b['std']:.2g}", b["mean"]),
            Cell(pair["validation"].describe() if pair else "(first by the mean)"),
            Cell("" if test is None else f"{fmt(test)} ± {b['test'][test_name + '_std']:.2g}", test),
            Cell(pair["test"].describe() if "test" in pair else ""),
            Cell(f"{b['seconds']:.1f}", b["seconds"]),
            Cell(reach),
            Cell(" ".join(f"{k.removeprefix('optimizer.')}={fmt(v)}" for k, v in b["params"].items())),
        ]
        rows.append(("", cells))
    columns = [
        "sweep (optimizer)",
        f"{metric} (mean ± std over seeds)",
        f"{leader} − it (95% interval)",
        f"{test_name} (once)",
        f"{leader} − it on test",
        "seconds",
        "to reach each other's final value",
        "config",
    ]
    page.table("sides", columns, rows)
    variants = [(title, a) for title, side_ablations in zip(titles, ablated) for a in side_ablations]
    if variants:
        page.heading("What the learnt Q adds: the chosen config on the same seeds, only Q changed")
        rows = [
            (
                "",
                [
                    Cell(title),
                    Cell(a.name),
                    Cell(f"{fmt(a.runs.mean(metric))} ± {a.runs.std(metric):.2g}", a.runs.mean(metric)),
                    Cell(a.learnt_q.describe()),
                ],
            )
            for title, a in variants
        ]
        columns = ["sweep", "Q", f"{metric} (mean ± std over seeds)", "chosen − it (95% interval)"]
        page.table("ablations", columns, rows)
    return page.render()
