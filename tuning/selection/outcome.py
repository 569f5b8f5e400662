"""How a sweep ends: what did not finish is closed, the best trial is chosen on validation (or
re-chosen over fresh seeds), its config tested once and exported, and the outcome returned
(`SweepOutcome`: what `fishleg-tune search` and `resume` summarise, and `tuning.search`
returns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.records.folder import SweepFolder
from tuning.records.ledger import Best, Ledger, TrialRecord, select_best
from tuning.records.status import TERMINAL, Status
from tuning.records.tracking import MlflowSweep, runs_url
from tuning.selection.export import write_best_config
from tuning.selection.holdout import evaluate_chosen
from tuning.selection.robust import RobustChoice, retrain_top, robust_best
from tuning.selection.seed_store import SeedStore
from tuning.sweep.callbacks import TrialRecorder, sweep_failure
from tuning.sweep.reconcile import fail_running_study_trials
from tuning.sweep.retention import folder_size, prune_checkpoints
from tuning.sweep.spec import SweepSpec

if TYPE_CHECKING:
    import pandas

__all__ = ["Echo", "SweepEnding", "SweepOutcome", "finish_sweep", "sweep_ending"]

Echo = Callable[[str], None]


@dataclass(kw_only=True)
class SweepOutcome:
    """What a sweep ended with. `test`: the exported config's test metrics, evaluated once
    after the choice (None while the sweep is unfinished). `failure`: the one error every
    trial failed with, when they all did (the sweep then stopped after its first trials).
    `test_note`: why `test` is None, when it is. `size`: bytes in the sweep folder.
    `budget_note`: how the sweep's time budget ended it, when it did."""

    folder: Path
    counts: dict[str, int]
    best: Best | None
    interrupted: bool
    mlflow_uri: str
    metric: str
    test: dict[str, float] | None = None
    failure: str | None = None
    test_note: str | None = None
    experiment_id: str | None = None
    size: int = 0
    budget_note: str | None = None

    @property
    def runs_url(self) -> str | None:
        """The MLflow UI's runs table of the sweep's experiment (see `tracking.runs_url`)."""
        return None if self.experiment_id is None else runs_url(self.mlflow_uri, self.experiment_id)

    @property
    def best_file(self) -> Path:
        """The exported config (`fishleg-tune train` and `FishLeg.from_config` read it)."""
        return SweepFolder.at(self.folder).best_file

    def trials(self) -> pandas.DataFrame:
        """The ledger as a table: one row per trial (id, status, epochs, the metric's last
        value, each sampled parameter, and test metrics on the exported trial)."""
        import pandas

        rows = [
            {
                "trial_id": r.trial_id,
                "status": r.status,
                "epochs": r.epochs,
                self.metric: r.value(self.metric),
                **r.params,
                **(r.test or {}),
            }
            for r in Ledger(SweepFolder.at(self.folder).ledger_file).records.values()
        ]
        return pandas.DataFrame(rows)


@dataclass(frozen=True)
class SweepEnding:
    """How the trials left the sweep: `failure`, the one error every trial failed with (the
    sweep stopped early); `ran_out`, ended by its time budget (finished); `interrupted`, stopped
    before its end by the user or a crash (`resume` continues it)."""

    failure: str | None
    ran_out: bool
    interrupted: bool


def sweep_ending(
    spec: SweepSpec, records: list[TrialRecord], unfinished: bool, folder: SweepFolder, seconds: float
) -> SweepEnding:
    """How a sweep of `records` ended, `seconds` after Tune started it; `unfinished`: trials were
    still running when it stopped (closed as INTERRUPTED)."""
    failure = None if unfinished else sweep_failure(records, folder)
    budget = spec.search.time_budget_s
    stopped = sum(r.status == Status.TIMED_OUT for r in records)
    ran_out = budget is not None and seconds >= budget and (stopped > 0 or len(records) < spec.search.num_samples)
    short = unfinished or len(records) < spec.search.num_samples
    return SweepEnding(failure, ran_out, failure is None and not ran_out and short)


def _choose(
    spec: SweepSpec, records: list[TrialRecord], interrupted: bool, folder: SweepFolder, echo: Echo
) -> tuple[Best | None, RobustChoice | None]:
    """The best trial on validation, re-chosen over fresh seeds when `selection:` asks and the
    sweep ended (the robust choice, or None); seed re-runs kept in the sweep's folder."""
    best = select_best(records, spec.metric.name, spec.metric.mode, spec.budget)
    top, seeds = spec.selection.robust_top, spec.selection.seeds
    robust = None
    if top and not interrupted:
        candidates = retrain_top(spec, records, top, seeds, echo, SeedStore.under(folder.path))
        robust = robust_best(candidates, spec.metric.name, spec.metric.mode)
    return (best if robust is None else robust.best), robust


def _test_and_export(
    spec: SweepSpec,
    folder: SweepFolder,
    meta: dict[str, Any],
    mlflow: MlflowSweep,
    recorder: TrialRecorder,
    choice: tuple[Best, RobustChoice | None],
    interrupted: bool,
    echo: Echo,
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The chosen config's test metrics, evaluated once (not while the sweep is unfinished), and
    its export to best_config.yaml, MLflow and the ledger."""
    best, robust = choice
    chosen = spec.config_for(best.record.params)
    if interrupted:
        test, test_info = None, {"test_on": "not evaluated: the sweep is unfinished (evaluated once it ends)"}
    else:
        runs = None if robust is None else robust.runs
        test, test_info = evaluate_chosen(spec, folder, best, chosen, runs, echo)
    write_best_config(
        best,
        chosen,
        folder.best_file,
        metric=spec.metric.name,
        mode=spec.metric.mode,
        budget=spec.budget,
        sweep_file=meta["sweep_file"],
        sweep_sha256=meta["sweep_file_sha256"],
        mlflow_uri=meta["mlflow_uri"],
        seed_runs=None if robust is None else robust.info,
        warm_start=meta.get("warm_start"),
        test=test,
        test_info=test_info,
    )
    mlflow.client.log_artifact(mlflow.parent_run_id, str(folder.best_file))
    mlflow.log_metrics(mlflow.parent_run_id, {f"best_{spec.metric.name}": best.value, **(test or {})}, step=0)
    if test is not None:
        recorder.record_test(best.record.trial_id, test)
    return test, test_info


def _close(
    spec: SweepSpec,
    folder: SweepFolder,
    meta: dict[str, Any],
    mlflow: MlflowSweep,
    recorder: TrialRecorder,
    end: SweepEnding,
) -> None:
    """The records' loose ends: Optuna trials a killed driver left running (once the sweep
    ended), the checkpoints no one will read, and the sweep's MLflow run."""
    if not end.interrupted:
        fail_running_study_trials(folder)
    if not meta.get("keep_checkpoints"):
        ended = [r.trial_id for r in recorder.ledger.records.values() if r.status in TERMINAL]
        prune_checkpoints(folder, ended, spec.metric.name, spec.metric.mode, spec.budget)
    mlflow.end(mlflow.parent_run_id, "FAILED" if end.failure else "KILLED" if end.interrupted else "FINISHED")


def finish_sweep(
    spec: SweepSpec,
    folder: SweepFolder,
    meta: dict[str, Any],
    mlflow: MlflowSweep,
    echo: Echo,
    seconds: float,
) -> SweepOutcome:
    """Close what did not finish, choose on validation (as the sweep's `selection:` says), test
    the choice once, export it, close the records.
    `seconds`: how long Tune ran (a sweep that ran past its time budget ended by it, and is
    finished, not interrupted)."""
    recorder = TrialRecorder(folder.ledger_file, spec.budget, mlflow)
    unfinished = recorder.close_unfinished()
    records = list(recorder.ledger.records.values())
    end = sweep_ending(spec, records, bool(unfinished), folder, seconds)
    best, robust = _choose(spec, records, end.interrupted, folder, echo)
    test, test_info = None, {}
    if best is not None:
        choice = (best, robust)
        test, test_info = _test_and_export(spec, folder, meta, mlflow, recorder, choice, end.interrupted, echo)
    _close(spec, folder, meta, mlflow, recorder, end)
    return SweepOutcome(
        folder=folder.path,
        counts=recorder.ledger.counts(),
        best=best,
        interrupted=end.interrupted,
        mlflow_uri=meta["mlflow_uri"],
        metric=spec.metric.name,
        test=test,
        failure=end.failure,
        test_note=None if test is not None else test_info.get("test_on"),
        experiment_id=meta["experiment_id"],
        size=folder_size(folder.path),
        budget_note=_budget_note(spec, records, end.ran_out),
    )


def _budget_note(spec: SweepSpec, records: list[TrialRecord], ran_out: bool) -> str | None:
    """What the time budgets did, when they shaped the outcome: the sweep's ran out, or every
    trial that ended was stopped by its own."""
    stopped = sum(r.status == Status.TIMED_OUT for r in records)
    if ran_out:
        return (
            f"the sweep's time budget ran out after {spec.search.time_budget_s:g} s (search.time_budget_s); "
            f"{stopped} trial(s) stopped, {max(0, spec.search.num_samples - len(records))} never started"
        )
    per_trial = spec.search.trial_time_budget_s
    if per_trial is not None and records and stopped == len(records):
        return (
            f"every trial was stopped by its time budget, {per_trial:g} s (search.trial_time_budget_s), before "
            f"its {spec.budget} epochs; raise search.trial_time_budget_s, or lower training.epochs"
        )
    return None
