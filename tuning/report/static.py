"""Static PNG figures of a sweep, for papers and slides (`fishleg-tune report --png`):
Optuna's matplotlib backend and matplotlib, the same content as the interactive page's figures."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from matplotlib.figure import Figure
from optuna.visualization import matplotlib as ovm

from tuning.records.ledger import TrialRecord
from tuning.report.figures import STATUS_STYLE, short

__all__ = ["write_pngs"]


def _learning_curves(records: Sequence[TrialRecord], metric: str) -> Figure:
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    seen = set()
    for rec in records:
        points = [(row["epoch"], row[metric]) for row in rec.history if metric in row]
        if not points:
            continue
        color, dash = STATUS_STYLE.get(rec.status, ("black", "solid"))
        style = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}[dash]
        label = rec.status.lower() if rec.status not in seen else None
        seen.add(rec.status)
        ax.plot(*zip(*points), color=color, linestyle=style, marker=".", alpha=0.8, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if seen:
        ax.legend()
    return fig


def _importance(importances: dict[str, float], metric: str) -> Figure:
    fig = Figure(figsize=(7, 1 + 0.4 * len(importances)))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh([short(n) for n in names], [importances[n] for n in names])
    ax.set_xlabel(f"share of the variance of {metric} (fANOVA)")
    return fig


def _optuna_figure(plot: Callable[..., object], study: optuna.Study, **kwargs: object) -> Figure:
    """An Optuna plot's figure (Optuna draws through pyplot: the figure is closed once saved)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = plot(study, **kwargs)
    fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    fig.set_size_inches(10, 4.5)
    return fig


def write_pngs(
    study: optuna.Study,
    records: Sequence[TrialRecord],
    metric: str,
    importances: dict[str, float] | None,
    out: Path,
) -> dict[str, Path]:
    """learning_curves.png always; history.png and parallel_coordinates.png once a trial is
    complete; importance.png when importances are known. Returns {name: path}."""
    figures = {"learning_curves": _learning_curves(records, metric)}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        params = sorted({p for t in complete for p in t.params})
        figures["history"] = _optuna_figure(ovm.plot_optimization_history, study, target_name=metric)
        figures["parallel_coordinates"] = _optuna_figure(
            ovm.plot_parallel_coordinate, study, params=params, target_name=metric
        )
    if importances:
        figures["importance"] = _importance(importances, metric)
    out.mkdir(exist_ok=True)
    paths = {}
    for name, fig in figures.items():
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=110, bbox_inches="tight")
        plt.close(fig)  # a no-op for figures made without pyplot
    return paths
