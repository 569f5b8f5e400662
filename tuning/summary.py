"""`fishleg-tune compare --summary FOLDER ...`: the same optimizers compared on several
workloads, summed up in the AlgoPerf manner.

Sides are matched across comparisons by their sweep's name with the comparison's common
`workload_` prefix taken off (`curves_soap` and `charlm_soap` are both `soap`; a bare
`curves` is its optimizer's name). For each optimizer: on how many workloads it is best or
level with the best (the best's 95% interval against it holds zero), and a performance profile
of time to target: on each workload the target is the loosest final value among the sides level
with the best (so each of them reaches it by its end), and ρ(τ) is the share of workloads on
which an optimizer reaches it within τ times the fastest optimizer's seconds there."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning.errors import UserError
from tuning.report.page import Cell, Page

__all__ = ["Summary", "arm_names", "summarize", "time_to"]

SUMMARY_KEYS = ("subject", "metric", "mode", "leader", "pairs", "sides")


@dataclass
class Summary:
    """Where the summary is, its lines (one per optimizer) and its numbers."""

    folder: Path
    lines: list[str]
    numbers: dict[str, Any]


def arm_names(labels: Sequence[str], optimizers: Sequence[str]) -> list[str]:
    """Each side's name across workloads: its label without the labels' common `prefix_`."""
    common = os.path.commonprefix(list(labels)) if len(labels) > 1 else ""
    whole = all(label == common or label.startswith(common + "_") for label in labels)  # `curves` beside `curves_x`
    prefix = common + "_" if common and whole else common[: common.rfind("_") + 1]
    return [
        (label[len(prefix) :] if label.startswith(prefix) else "") or optimizer
        for label, optimizer in zip(labels, optimizers)
    ]


def time_to(
    curve: Sequence[float], elapsed: Sequence[float], target: float, mode: str
) -> tuple[int | None, float | None]:
    """(epochs, seconds) until a per-epoch curve first reaches `target`; (None, None) if it never does."""
    for epoch, (value, seconds) in enumerate(zip(curve, elapsed), start=1):
        if (value <= target) if mode == "min" else (value >= target):
            return epoch, seconds
    return None, None


def _read(folder: Path) -> dict[str, Any]:
    """A comparison's comparison.json, checked to hold what a summary needs."""
    path = folder / "comparison.json" if folder.is_dir() else folder
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the comparison ({exc}); give the folder `compare` printed.") from None
    missing = [k for k in SUMMARY_KEYS if k not in data]
    if not isinstance(data, dict) or missing or any("curve" not in s["best"] for s in data["sides"].values()):
        raise UserError(
            f"{path}: not a comparison this version can sum up (it lacks {missing or ['curves']}); run the "
            "same `fishleg-tune compare` again to write it (finished sweeps are reused)."
        )
    return data


def _workload(data: dict[str, Any]) -> dict[str, Any]:
    """One comparison as the summary sees it: each optimizer's standing and time to target."""
    labels = list(data["sides"])
    names = arm_names(labels, [data["sides"][label]["optimizer"] for label in labels])
    mode = data["mode"]
    beaten = {p["against"] for p in data["pairs"] if p["split"] == "validation" and p["verdict"] == "better"}
    level = [label for label in labels if label not in beaten]
    finals = [data["sides"][label]["best"]["mean"] for label in level]
    target = max(finals) if mode == "min" else min(finals)
    times = {
        name: time_to(data["sides"][label]["best"]["curve"], data["sides"][label]["best"]["elapsed"], target, mode)[1]
        for name, label in zip(names, labels)
    }
    return {
        "subject": data["subject"],
        "metric": data["metric"],
        "target": target,
        "best_or_level": [name for name, label in zip(names, labels) if label in level],
        "seconds_to_target": times,
    }


def _profile(workloads: list[dict[str, Any]], arms: list[str]) -> dict[str, list[tuple[float, float]]]:
    """ρ(τ) of each optimizer at the ratios where it changes: [(τ, share of workloads)]."""
    ratios: dict[str, list[float]] = {arm: [] for arm in arms}
    for w in workloads:
        reached = [t for t in w["seconds_to_target"].values() if t is not None]
        fastest = min(reached) if reached else None
        for arm in arms:
            t = w["seconds_to_target"].get(arm)
            ratios[arm].append(math.inf if t is None or not fastest else t / fastest)
    n = len(workloads)
    steps = {arm: sorted(tau for tau in set(rs) if math.isfinite(tau)) for arm, rs in ratios.items()}
    return {arm: [(tau, sum(r <= tau for r in ratios[arm]) / n) for tau in taus] for arm, taus in steps.items()}


def summarize(folders: Sequence[Path], out: Path) -> Summary:
    """Sum up the comparisons in `folders`; writes summary.json and summary.html to `out`."""
    workloads = [_workload(_read(Path(f))) for f in folders]
    arms = sorted({arm for w in workloads for arm in w["seconds_to_target"]})
    profile = _profile(workloads, arms)
    lines = []
    for arm in arms:
        present = [w for w in workloads if arm in w["seconds_to_target"]]
        level = sum(arm in w["best_or_level"] for w in workloads)
        reached = sum(w["seconds_to_target"].get(arm) is not None for w in workloads)
        first = sum(share for tau, share in profile[arm] if tau == 1.0)
        lines.append(
            f"{arm}: best or level with the best on {level} of {len(workloads)} workloads (compared on "
            f"{len(present)}); reached the target on {reached}, the fastest to it on {round(first * len(workloads))}"
        )
    numbers = {"workloads": workloads, "profile": {arm: [list(p) for p in ps] for arm, ps in profile.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(numbers, indent=1))
    (out / "summary.html").write_text(_page(workloads, arms, profile, lines))
    return Summary(out, lines, numbers)


def _page(workloads: list[dict[str, Any]], arms: list[str], profile: dict, lines: list[str]) -> str:
    """summary.html: the lines, the performance profile, and a table of workloads."""
    import plotly.graph_objects as go

    page = Page("compare summary")
    page.heading(f"{len(arms)} optimizers on {len(workloads)} workloads", 1)
    for line in lines:
        page.text(line)
    fig = go.Figure()
    top = max([tau for ps in profile.values() for tau, _ in ps] + [1.0])
    for arm in arms:
        steps = [(1.0, 0.0), *profile[arm], (top * 1.1, profile[arm][-1][1] if profile[arm] else 0.0)]
        fig.add_scatter(x=[t for t, _ in steps], y=[r for _, r in steps], mode="lines", line_shape="hv", name=arm)
    fig.update_layout(
        xaxis_title="τ: seconds to target ÷ the fastest's", yaxis_title="share of workloads", xaxis_type="log"
    )
    page.heading("Performance profile of time to target")
    page.figure("profile", fig)
    rows = []
    for w in workloads:
        cells = [Cell(w["subject"]), Cell(f"{w['metric']} {w['target']:.4g}", w["target"])]
        cells.append(Cell(", ".join(w["best_or_level"])))
        cells.extend(_seconds(w["seconds_to_target"], arm) for arm in arms)
        rows.append(("", cells))
    page.table("workloads", ["workload", "target", "best or level", *[f"{a}: seconds to target" for a in arms]], rows)
    return page.render()


def _seconds(times: dict[str, float | None], arm: str) -> Cell:
    """A table cell: an optimizer's seconds to a workload's target, 'never', or '—' where it was not compared."""
    if arm not in times:
        return Cell("—")
    seconds = times[arm]
    return Cell("never" if seconds is None else f"{seconds:.1f}", seconds)
