"""`fishleg-tune report`: figures of a sweep (PNG) and one self-contained report.html.

Figures come from Optuna's visualization module (matplotlib backend) and matplotlib, read
from the sweep's Optuna study and trial ledger, so a running or resumed sweep reports what
it has so far. The HTML embeds the PNGs, so it opens offline as a single file."""

from __future__ import annotations

import base64
import html
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from matplotlib.figure import Figure
from optuna.visualization import matplotlib as ovm

from tuning.errors import UserError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import (
    COMPLETE,
    DIVERGED,
    FAILED,
    INTERRUPTED,
    PRUNED,
    RUNNING,
    Ledger,
    TrialRecord,
    format_counts,
    rank_trials,
)
from tuning.run.config import load_run_config
from tuning.sweep.spec import SweepSpec, load_sweep

__all__ = ["CSS", "Report", "learning_curves", "png_tag", "write_report"]

STATUS_STYLE = {
    COMPLETE: ("tab:blue", "-"),
    PRUNED: ("tab:gray", "--"),
    DIVERGED: ("tab:purple", ":"),
    FAILED: ("tab:red", ":"),
    RUNNING: ("tab:green", "-"),
    INTERRUPTED: ("tab:orange", "-."),
}


@dataclass(frozen=True)
class Report:
    """The report's HTML file, its PNG figures, and notes on what could not be drawn yet."""

    html: Path
    figures: dict[str, Path]
    notes: list[str]


def learning_curves(records: Sequence[TrialRecord], metric: str, title: str) -> Figure:
    """Validation metric per epoch for every trial; pruned trials dashed grey, failed red."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    seen = set()
    for rec in records:
        points = [(row["epoch"], row[metric]) for row in rec.history if metric in row]
        if not points:
            continue
        color, style = STATUS_STYLE.get(rec.status, ("black", "-"))
        label = rec.status.lower() if rec.status not in seen else None
        seen.add(rec.status)
        ax.plot(*zip(*points), color=color, linestyle=style, marker=".", alpha=0.8, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if seen:
        ax.legend()
    return fig


def _optuna_figure(plot: Callable[..., object], study: optuna.Study, **kwargs: object) -> Figure:
    """An Optuna plot's figure (Optuna draws through pyplot: the figure is closed there once saved)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = plot(study, **kwargs)
    fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    fig.set_size_inches(10, 4.5)
    return fig


def _figures(spec: SweepSpec, study: optuna.Study, records: list[TrialRecord]) -> tuple[dict, list[str]]:
    metric = spec.metric.name
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    figures: dict[str, Figure] = {"learning_curves": learning_curves(records, metric, "learning curves")}
    notes = []
    if complete:
        figures["history"] = _optuna_figure(ovm.plot_optimization_history, study, target_name=metric)
        params = sorted({p for t in complete for p in t.params})
        figures["parallel_coordinates"] = _optuna_figure(
            ovm.plot_parallel_coordinate, study, params=params, target_name=metric
        )
    else:
        notes.append("No trial has run the full budget yet: history and parallel coordinates come later.")
    varied = {p for t in complete for p in t.params if len({tt.params.get(p) for tt in complete}) > 1}
    if len(complete) >= 3 and varied:
        figures["importance"] = _optuna_figure(
            ovm.plot_param_importances,
            study,
            target_name=metric,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
        )
    else:
        notes.append("Hyperparameter importance needs at least 3 complete trials that differ.")
    return figures, notes


def png_tag(path: Path) -> str:
    """An <img> tag with the PNG embedded, so the HTML is one self-contained file."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _table(records: list[TrialRecord], metric: str, limit: int = 10) -> str:
    head = f"<tr><th>trial</th><th>status</th><th>epochs</th><th>{html.escape(metric)}</th><th>config</th></tr>"
    rows = []
    for rec in records[:limit]:
        value = rec.value(metric)
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.params.items())
        rows.append(
            f"<tr><td>{rec.trial_id}</td><td>{rec.status}</td><td>{rec.epochs}</td>"
            f"<td>{'' if value is None else f'{value:.5g}'}</td><td>{html.escape(params)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
img{max-width:100%;margin:1em 0}pre{background:#f6f6f6;padding:1em;overflow:auto}"""


def load_study(sweep: SweepFolder) -> optuna.Study:
    """The sweep's Optuna study: the one study in its optuna.db, whatever the folder is called
    now (a copied or renamed sweep folder still reports)."""
    try:
        names = optuna.get_all_study_names(storage=sweep.study_url)
        if len(names) != 1:
            raise ValueError(f"it holds {len(names)} studies, not 1")
        return optuna.load_study(study_name=names[0], storage=sweep.study_url)
    except Exception as exc:  # sqlite and Optuna raise many kinds; all mean the file is unusable
        raise UserError(f"{sweep.study_file}: cannot read the sweep's Optuna study ({exc}).") from None


def write_report(path: Path) -> Report:
    """report.html and the PNG figures of the sweep in `path` (STORAGE/NAME), from what it has so far."""
    sweep = SweepFolder.at(path)
    folder = sweep.path
    if not sweep.ledger_file.exists() or not sweep.study_file.exists():
        raise UserError(f"{folder}: not a sweep folder with results yet (no {sweep.LEDGER} / {sweep.STUDY}).")
    spec = load_sweep(sweep.spec_file)
    study = load_study(sweep)
    ledger = Ledger(sweep.ledger_file)
    records = list(ledger.records.values())
    figures, notes = _figures(spec, study, records)
    out = folder / "report"
    out.mkdir(exist_ok=True)
    paths = {}
    for name, fig in figures.items():
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=110, bbox_inches="tight")
        plt.close(fig)  # a no-op for figures made without pyplot
    counts = format_counts(ledger.counts())
    exported = load_run_config(sweep.best_file) if sweep.best_file.exists() else None
    best = sweep.best_file.read_text() if exported is not None else "no best config yet"
    provenance = (exported.provenance or {}) if exported is not None else {}
    test = provenance.get("test")
    test_line = (
        "Test split, evaluated once for the exported config (chosen on validation): "
        + ", ".join(f"{k} {v:.5g}" for k, v in test.items())
        + f" ({provenance.get('test_on', '')})."
        if test
        else "Test split: not evaluated yet (it is evaluated once, for the exported config, when the sweep ends)."
    )
    ranked = rank_trials(records, spec.metric.name, spec.metric.mode)
    sections = [
        f"<h1>Sweep {html.escape(folder.name)}</h1>",
        f"<p>{html.escape(spec.subject)} with {html.escape(spec.optimizer.name)}: {counts} of "
        f"{spec.search.num_samples} trials; metric {html.escape(spec.metric.name)} ({spec.metric.mode}), "
        f"budget {spec.budget} epochs, sampler {spec.search.sampler}, scheduler {spec.scheduler.type}.</p>",
        f"<p><strong>{html.escape(test_line)}</strong></p>",
        *[f"<p><em>{html.escape(n)}</em></p>" for n in notes],
        "<h2>Top trials</h2>",
        _table(ranked, spec.metric.name),
        *[f"<h2>{name.replace('_', ' ')}</h2>{png_tag(path)}" for name, path in paths.items()],
        "<h2>Best config and provenance</h2>",
        f"<pre>{html.escape(best)}</pre>",
    ]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(folder.name)}</title>"
    page += f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>"
    (folder / "report.html").write_text(page)
    return Report(folder / "report.html", paths, notes)
