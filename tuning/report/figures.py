"""The report's own interactive figures (plotly): learning curves per trial, importances,
and seed bands for comparisons. Optuna's figures (history, parallel coordinates, slice,
contour) come from `optuna.visualization` as they are, relabelled for reading."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial

from tuning.records.ledger import TrialRecord, format_value
from tuning.records.status import Status

__all__ = ["Band", "STATUS_STYLE", "bands", "importance_bars", "learning_curves", "parallel_coordinates", "short"]

# status → (colour, dash): pruned and diverged trials stand apart from complete ones.
STATUS_STYLE = {
    Status.COMPLETE: ("#1f77b4", "solid"),
    Status.PRUNED: ("#999999", "dash"),
    Status.DIVERGED: ("#9467bd", "dot"),
    Status.TIMED_OUT: ("#8c564b", "dashdot"),
    Status.FAILED: ("#d62728", "dot"),
    Status.RUNNING: ("#2ca02c", "solid"),
    Status.INTERRUPTED: ("#ff7f0e", "dashdot"),
}


def short(name: str) -> str:
    """A searched parameter's axis label: `optimizer.lr` → `lr` (other sections keep theirs)."""
    return name.removeprefix("optimizer.")


def learning_curves(records: Sequence[TrialRecord], metric: str) -> go.Figure:
    """`metric` per epoch, one line per trial, coloured by status; hovering a line shows the
    trial's config; clicking a status in the legend hides or shows all its trials."""
    fig = go.Figure()
    shown: set[str] = set()
    for rec in records:
        points = [(row["epoch"], row[metric]) for row in rec.history if metric in row]
        if not points:
            continue
        color, dash = STATUS_STYLE.get(rec.status, ("black", "solid"))
        config = "<br>".join(f"{html.escape(short(k))} = {html.escape(format_value(v))}" for k, v in rec.params.items())
        x, y = zip(*points)
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines+markers",
            name=rec.status.lower(),
            legendgroup=rec.status,
            showlegend=rec.status not in shown,
            line={"color": color, "dash": dash, "width": 1.5},
            marker={"size": 5},
            text=[f"<b>{html.escape(rec.trial_id)}</b> ({rec.status.lower()})<br>{config}"] * len(x),
            hovertemplate=f"%{{text}}<br>epoch %{{x}}: {html.escape(metric)} %{{y:.4g}}<extra></extra>",
        )
        shown.add(rec.status)
    fig.update_layout(xaxis_title="epoch", yaxis_title=metric, hovermode="closest", height=450)
    return fig


def _axis(name: str, dist: BaseDistribution, values: list[Any]) -> dict[str, Any]:
    """One parallel-coordinates dimension: categories at 0..n-1, log-scale numbers as log10
    with ticks at their real values; a trial without the parameter (a conditional one not
    sampled) sits on its own "n/a" tick below the range."""
    present = [v for v in values if v is not None]
    if isinstance(dist, CategoricalDistribution):
        labels = [str(c) for c in dist.choices]
        pos = [None if v is None else labels.index(str(v)) for v in values]
        ticks = list(range(len(labels)))
    else:
        log = getattr(dist, "log", False)
        pos = [None if v is None else (math.log10(v) if log else float(v)) for v in values]
        low, high = min(p for p in pos if p is not None), max(p for p in pos if p is not None)
        ticks = [low + (high - low) * i / 4 for i in range(5)] if high > low else [low]
        labels = [format_value(10**t if log else t) for t in ticks]
    if len(present) < len(values):
        below = min(ticks) - 0.15 * ((max(ticks) - min(ticks)) or 1.0)
        pos = [below if p is None else p for p in pos]
        ticks, labels = [below, *ticks], ["n/a", *labels]
    return {"label": short(name), "values": pos, "tickvals": ticks, "ticktext": labels}


def parallel_coordinates(trials: Sequence[FrozenTrial], metric: str, order: Sequence[str] = ()) -> go.Figure:
    """One line per complete trial across every searched parameter (in `order`, the sweep
    file's, then any other by name) and the metric; drag along any axis to keep only the lines
    that pass through that range (brushing)."""
    rank = {name: i for i, name in enumerate(order)}
    names = sorted({p for t in trials for p in t.params}, key=lambda p: (rank.get(p, len(rank)), p))
    dists = {p: next(t.distributions[p] for t in trials if p in t.distributions) for p in names}
    values = [t.value for t in trials]
    dimensions = [{"label": metric, "values": values}]
    dimensions += [_axis(p, dists[p], [t.params.get(p) for t in trials]) for p in names]
    fig = go.Figure(
        go.Parcoords(
            line={"color": values, "colorscale": "Viridis_r", "showscale": True, "colorbar": {"title": metric}},
            dimensions=dimensions,
            labelangle=-20,
        )
    )
    fig.update_layout(height=450, margin={"t": 90, "l": 70, "r": 100})
    return fig


def importance_bars(importances: dict[str, float], metric: str) -> go.Figure:
    """fANOVA importances, largest at the top."""
    names = list(importances)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[importances[n] for n in names],
            y=[short(n) for n in names],
            orientation="h",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title=f"share of the variance of {metric} (fANOVA)", height=120 + 40 * len(names), margin={"l": 160}
    )
    return fig


@dataclass(frozen=True)
class Band:
    """One curve with a band: its label, x values, the mean and the band's low and high edges."""

    label: str
    x: Sequence[float]
    mean: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]


def bands(series: Sequence[Band], x_title: str, y_title: str) -> go.Figure:
    """Mean curves, each with its band filled between low and high (hover shows all three)."""
    fig = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for i, band in enumerate(series):
        color = palette[i % len(palette)]
        fig.add_scatter(
            x=[*band.x, *band.x[::-1]],
            y=[*band.high, *band.low[::-1]],
            fill="toself",
            fillcolor=color,
            opacity=0.2,
            line={"width": 0},
            legendgroup=band.label,
            showlegend=False,
            hoverinfo="skip",
        )
        fig.add_scatter(
            x=list(band.x),
            y=list(band.mean),
            mode="lines+markers",
            name=band.label,
            legendgroup=band.label,
            line={"color": color},
            customdata=list(zip(band.low, band.high)),
            hovertemplate=f"{html.escape(band.label)}: %{{y:.4g}} (seeds %{{customdata[0]:.4g}} to "
            "%{customdata[1]:.4g})<extra></extra>",
        )
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, hovermode="closest", height=450)
    return fig
