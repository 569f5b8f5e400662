"""`fishleg-tune report`: one interactive, self-contained report.html of a sweep.

Read only from the sweep folder (the Optuna study, the trial ledger, the sweep file and
best_config.yaml), so a copied folder reports, and a running sweep reports what it has so far."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna import visualization as ov

from tuning.errors import UserError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord, format_counts, format_value, rank_trials
from tuning.report.figures import importance_bars, learning_curves, parallel_coordinates, short
from tuning.report.page import Cell, Page, fmt
from tuning.run.config import load_run_config
from tuning.sweep.spec import SweepSpec, load_sweep
from tuning.sweep.warm_start import own_trials

__all__ = ["Report", "load_study", "write_report"]


@dataclass(frozen=True)
class Report:
    """The report's HTML file, the PNG figures (with `--png`), and what could not be drawn yet."""

    html: Path
    figures: dict[str, Path]
    notes: list[str]


def load_study(sweep: SweepFolder) -> optuna.Study:
    """The sweep's Optuna study: the one study in its optuna.db, whatever the folder is called
    now (a copied or renamed sweep folder still reports). Trials told from earlier sweeps (a
    warm start) are left out: the report is of this sweep's own trials."""
    try:
        names = optuna.get_all_study_names(storage=sweep.study_url)
        if len(names) != 1:
            raise ValueError(f"it holds {len(names)} studies, not 1")
        study = optuna.load_study(study_name=names[0], storage=sweep.study_url)
    except Exception as exc:  # sqlite and Optuna raise many kinds; all mean the file is unusable
        raise UserError(f"{sweep.study_file}: cannot read the sweep's Optuna study ({exc}).") from None
    own = own_trials(study)
    if len(own) == len(study.trials):
        return study
    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)  # in memory
    copy.add_trials(own)
    return copy


def _importances(study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> dict[str, float] | None:
    """fANOVA importances of the parameters every complete trial has, or None when fewer than
    3 complete trials differ (too few to say)."""
    varied = {p for t in complete for p in t.params if len({tt.params.get(p) for tt in complete}) > 1}
    if len(complete) < 3 or not varied:
        return None
    return optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))


def _readable(fig: go.Figure) -> go.Figure:
    """Optuna's figure with short axis labels (`lr`, not `optimizer.lr`) and no title (the
    section's heading says it)."""
    fig.for_each_xaxis(lambda a: a.update(title_text=short(a.title.text or "")))
    fig.for_each_yaxis(lambda a: a.update(title_text=short(a.title.text or "")))
    fig.update_layout(height=450, title=None)
    return fig


def _optuna_figures(study: optuna.Study, metric: str, params: list[str]) -> dict[str, go.Figure]:
    """Optuna's plotly figures: history with best so far, and slice and contour plots of
    `params` (the most important ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's "experimental" and "too few trials" warnings
        figures = {
            "history": ov.plot_optimization_history(study, target_name=metric),
            "slice": ov.plot_slice(study, params=params, target_name=metric),
        }
        if len(params) == 2:
            figures["contour"] = ov.plot_contour(study, params=params, target_name=metric)
    return {name: _readable(fig) for name, fig in figures.items()}


def _trial_rows(records: list[TrialRecord], metric: str, params: list[str]) -> list[tuple[str, list[Cell]]]:
    rows = []
    for rec in records:
        value = rec.value(metric)
        test = ", ".join(f"{k} {fmt(v)}" for k, v in (rec.test or {}).items() if not k.endswith("finals"))
        cells = [
            Cell(rec.trial_id),
            Cell(rec.status),
            Cell(str(rec.epochs), rec.epochs),
            Cell(fmt(value), value),
            *[Cell(format_value(rec.params[p]) if p in rec.params else "", rec.params.get(p)) for p in params],
            Cell(rec.error or test),
        ]
        rows.append((rec.status, cells))
    return rows


def _chosen(page: Page, sweep: SweepFolder) -> None:
    """The exported config and its one test evaluation, or why there is none yet."""
    page.heading("Chosen config")
    if not sweep.best_file.exists():
        page.text("No config exported yet: the sweep exports one, chosen on validation, when it ends.", "note")
        return
    provenance = load_run_config(sweep.best_file).provenance or {}
    test = provenance.get("test")
    if test:
        scores = ", ".join(f"{k} {v:.5g}" for k, v in test.items() if isinstance(v, float))
        page.text(
            f"Test split, evaluated once for this config (chosen on validation): {scores} "
            f"({provenance.get('test_on', '')}).",
            "strong",
        )
    else:
        page.text(f"Test split: {provenance.get('test_on', 'not evaluated')}.", "note")
    searched = provenance.get("params", {})
    page.text("Chosen: " + ", ".join(f"{short(k)} = {format_value(v)}" for k, v in searched.items()))
    page.details(f"{sweep.best_file.name}: the whole config and its provenance", sweep.best_file.read_text())


def write_report(path: Path, png: bool = False) -> Report:
    """report.html of the sweep in `path` (STORAGE/NAME) from what it has so far; with `png`,
    static figures in report/ as well."""
    sweep = SweepFolder.at(path)
    folder = sweep.path
    if not sweep.ledger_file.exists() or not sweep.study_file.exists():
        raise UserError(f"{folder}: not a sweep folder with results yet (no {sweep.LEDGER} / {sweep.STUDY}).")
    spec: SweepSpec = load_sweep(sweep.spec_file)
    study = load_study(sweep)
    ledger = Ledger(sweep.ledger_file)
    records = list(ledger.records.values())
    metric = spec.metric.name
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    importances = _importances(study, complete)
    searched = list(spec.space)
    top = list(importances)[:2] if importances else searched[:2]

    page = Page(f"sweep {folder.name}")
    page.heading(f"Sweep {folder.name}", 1)
    page.text(
        f"{spec.subject} with {spec.optimizer.name}: {format_counts(ledger.counts())} of {spec.search.num_samples} "
        f"trials; metric {metric} ({spec.metric.mode}), budget {spec.budget} epochs, sampler "
        f"{spec.search.sampler}, scheduler {spec.scheduler.type}. Hover a figure for values; drag along an axis of "
        "the parallel coordinates to select a range; click a legend entry to hide or show it."
    )
    notes = []
    if not complete:
        notes.append("No trial has run the full budget yet: history, parallel coordinates, slices come later.")
    if not importances:
        notes.append("Hyperparameter importance needs at least 3 complete trials that differ.")
    for note in notes:
        page.text(note, "note")
    _chosen(page, sweep)
    figures = _optuna_figures(study, metric, top) if complete else {}
    if figures:
        page.heading("Optimization history")
        page.figure("history", figures["history"])
        page.heading("Parallel coordinates")
        page.figure("parallel_coordinates", parallel_coordinates(complete, metric, searched))
    if importances:
        page.heading("Parameter importances")
        page.figure("importance", importance_bars(importances, metric))
    if figures:
        page.heading(f"{' and '.join(short(p) for p in top)}: slice" + (" and contour" if "contour" in figures else ""))
        page.figure("slice", figures["slice"])
        if "contour" in figures:
            page.figure("contour", figures["contour"])
    page.heading("Learning curves")
    page.figure("learning_curves", learning_curves(records, metric))
    page.heading("Trials")
    ranked = rank_trials(records, metric, spec.metric.mode)
    ordered = ranked + [r for r in records if r not in ranked]
    page.table(
        "trials",
        ["trial", "status", "epochs", metric, *[short(p) for p in searched], "test or error"],
        _trial_rows(ordered, metric, searched),
    )
    (folder / "report.html").write_text(page.render())
    pngs = {}
    if png:
        from tuning.report.static import write_pngs  # matplotlib only when asked for

        pngs = write_pngs(study, records, metric, importances, folder / "report")
    return Report(folder / "report.html", pngs, notes)
