"""`fishleg-tune list`, `best` and `report`: commands that read sweep folders only (no Ray,
no training stack; `best` not even Optuna)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tuning.cli.common import console, echo, quiet_libraries
from tuning.errors import UserError

if TYPE_CHECKING:
    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import TrialRecord

__all__ = ["best", "list_sweeps", "report"]


def list_sweeps(args: argparse.Namespace) -> int:
    """`fishleg-tune list`: the sweeps of a storage folder, with their state and best value."""
    from rich.table import Table
    from rich.text import Text

    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import Ledger, format_counts, format_value, rank_trials
    from tuning.records.lock import holder
    from tuning.sweep.spec import load_sweep

    storage = Path(args.storage_path)
    if not storage.is_dir():
        raise UserError(f"--storage-path {storage}: no such folder; sweeps go to fishleg-runs/ unless told.")
    table = Table()
    for column in ("sweep", "state", "trials", "best", "created"):
        table.add_column(column, overflow="fold")
    unreadable = []
    for path in sorted(p for p in storage.iterdir() if (p / SweepFolder.META).is_file()):
        try:  # one damaged folder (or another tool's) is named; the sweeps beside it are listed
            folder = SweepFolder.at(path)
            meta = folder.checked_meta()
            ledger = Ledger(folder.ledger_file) if folder.ledger_file.exists() else None
            spec = load_sweep(folder.spec_file)
        except UserError as err:
            table.add_row(*map(Text, (path.name, "unreadable", "", "", "")))
            unreadable.append(str(err))
            continue
        records = list(ledger.records.values()) if ledger else []
        ranked = rank_trials(records, spec.metric.name, spec.metric.mode)
        best = f"{spec.metric.name} {format_value(ranked[0].value(spec.metric.name))}" if ranked else ""
        state = "running" if holder(path) else ("done" if folder.best_file.exists() else "stopped")
        counts = format_counts(ledger.counts()) if ledger else ""
        cells = (path.name, state, counts, best, str(meta.get("created", "")))
        table.add_row(*map(Text, cells))
    console.print(table if table.row_count else f"no sweeps in {storage}", markup=False)
    for problem in unreadable:
        console.print(f"unreadable: {problem}", markup=False, soft_wrap=True)
    return 0


def best(args: argparse.Namespace) -> int:
    """`fishleg-tune best`: the top trials of a sweep, then where its best config is."""
    import json

    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import Ledger, rank_trials, trials_table
    from tuning.records.lock import holder
    from tuning.run.config import load_run_config
    from tuning.sweep.spec import load_sweep

    folder = SweepFolder.at(args.folder)
    running = holder(folder.path)
    if not folder.ledger_file.exists():
        if folder.is_sweep():
            raise UserError(
                f"{folder.path}: the sweep has recorded no trial yet; "
                + (f"it is running ({running})." if running else f"continue it: fishleg-tune resume {folder.path}")
            )
        raise UserError(f"{folder.path}: no {folder.LEDGER}; give the STORAGE/NAME folder of a sweep.")
    spec = load_sweep(folder.spec_file)
    metric = spec.metric.name
    records = list(Ledger(folder.ledger_file).records.values())
    ranked = rank_trials(records, metric, spec.metric.mode)
    best_file = folder.best_file
    if args.json:
        payload = {
            "best_config": load_run_config(best_file).to_dict() if best_file.exists() else None,
            "top": [
                {
                    "trial_id": r.trial_id,
                    "status": r.status,
                    "epochs": r.epochs,
                    metric: r.value(metric),
                    "params": r.params,
                }
                for r in ranked[: args.top]
            ],
        }
        print(json.dumps(payload, indent=1))
        return 0
    console.print(trials_table(ranked, metric, args.top))
    if best_file.exists():
        chosen = load_run_config(best_file).provenance or {}  # a damaged file is named, not printed
        shown = " ".join(f"{k.removeprefix('optimizer.')}={v}" for k, v in chosen.get("params", {}).items())
        echo(f"best config (trial {chosen.get('trial_id', '?')}): {best_file}\n  {shown}")
    if running:
        echo(f"running ({running}): the best config is exported when the sweep ends")
    elif not _ended(folder, records):
        echo(
            "unfinished: the sweep was stopped before its end (trials interrupted or never ended, the test split "
            f"not evaluated); continue it: fishleg-tune resume {folder.path}"
        )
    return 0


def _ended(folder: SweepFolder, records: list[TrialRecord]) -> bool:
    """Whether the sweep ran to its end: exported, and no trial left running or interrupted."""
    from tuning.records.status import Status

    return folder.best_file.exists() and not [r for r in records if r.status in (Status.RUNNING, Status.INTERRUPTED)]


def report(args: argparse.Namespace) -> int:
    """`fishleg-tune report`: report.html of a sweep (and PNGs with --png)."""
    quiet_libraries(args.verbose)
    from tuning.report import write_report

    report = write_report(args.folder, png=args.png)
    for note in report.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    for path in report.figures.values():
        echo(f"  figure: {path}")
    echo(f"report: {report.html}  (one interactive file; opens offline in a browser)")
    return 0
