"""After a killed driver: bring a sweep's four records back into agreement.

A SIGKILL stops the driver between writes, so the trial ledger (written after every event),
Tune's experiment state (written after every controller step, see `tuner.connect`), the
Optuna study and MLflow can each be one event apart. `resume` trusts, for each question, the
record that is durable for it:

- which trials exist: Tune's experiment state, because only its trials are resumed. A ledger
  row for a trial Tune never recorded (started in the instant before the kill) is dropped,
  and its MLflow run ends KILLED, tagged `trial_status: LOST`; the searcher samples afresh.
  So does a child run the ledger never named (made just before the ledger was saved).
- how a trial ended: the ledger, written before Tune saves the step. A trial the ledger saw
  end in the step Tune never saved is resumed by Tune from an earlier checkpoint; it then
  reports the ledger's last result (`ended_results`) and ends, so it is not trained again
  and its records stay as they were. Unfinished trials resume from their last checkpoints.
- Optuna trials left RUNNING once the sweep has ended belonged to lost trials: told FAIL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
from ray import tune

from tuning.errors import UserError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord
from tuning.records.status import DIVERGED_KEY, ENDED, TERMINAL, Status
from tuning.records.tracking import MlflowSweep
from tuning.sweep.trainable import Ended

__all__ = [
    "drop_lost_trials",
    "end_unrecorded_runs",
    "ended_results",
    "fail_running_study_trials",
    "restorable",
    "tune_trial_ids",
]

STATE_PREFIX = "experiment_state-"  # Tune's experiment state files: experiment_state-<time>.json


def tune_trial_ids(experiment: str, echo: Callable[[str], None] = print) -> set[str] | None:
    """The trial ids in Tune's newest intact experiment state under `experiment`: empty if Tune
    never saved one (the driver was killed first); None for a cloud URI, which is not read here.

    A kill can land while Tune writes or copies a state file, leaving it empty or cut short.
    Such a file is renamed `*.damaged` (kept, but no longer one Tune restores from), so Tune
    resumes from the state before it, as it would have had the kill come a moment earlier."""
    if "://" in experiment:
        return None
    folder = Path(experiment)
    states = sorted(folder.glob(f"{STATE_PREFIX}*.json")) if folder.is_dir() else []
    for state in reversed(states):
        try:
            text = state.read_text()
        except OSError as exc:
            raise UserError(f"{state}: cannot read Tune's experiment state ({exc}); nothing was changed.") from None
        try:
            data = json.loads(text)
            return {json.loads(trial)["trial_id"] for trial, _ in data["trial_data"]}
        except (ValueError, KeyError, TypeError) as exc:
            aside = state.with_name(state.name + ".damaged")
            state.rename(aside)
            echo(
                f"  {state.name}: Tune's experiment state was cut short by the kill ({type(exc).__name__}); "
                f"kept as {aside.name}; Tune resumes from the state before it, if any"
            )
    return set()


def restorable(experiment: str) -> bool:
    """Whether Tune can restore the experiment: its tuner file and, on a local path, an
    experiment state to resume from (absent when the driver was killed before Tune saved one)."""
    if not tune.Tuner.can_restore(experiment):
        return False
    return "://" in experiment or any(Path(experiment).glob(f"{STATE_PREFIX}*.json"))


def ended_results(folder: SweepFolder, ledger: Ledger) -> dict[str, Ended]:
    """How the ledger's COMPLETE, PRUNED and DIVERGED trials ended, for the trainable to
    replay (a FAILED one is retried as Tune decides). A diverged trial's result is its epoch
    and reason; the trainable rebuilds the rest with `diverged_report`."""
    out: dict[str, Ended] = {}
    for rec in ledger.records.values():
        if rec.status == Status.DIVERGED:
            out[rec.trial_id] = Ended({"epoch": rec.epochs + 1, DIVERGED_KEY: rec.error})
        elif rec.status in ENDED and rec.history:
            checkpoint = None if rec.checkpoint is None else folder.trial_checkpoint(rec.trial_id, rec.checkpoint)
            out[rec.trial_id] = Ended(rec.history[-1], checkpoint)
    return out


def drop_lost_trials(folder: SweepFolder, mlflow: MlflowSweep, known: set[str] | None) -> list[TrialRecord]:
    """Remove the unfinished ledger rows of trials Tune never recorded (`known`: the trial ids
    of `tune_trial_ids`; None: not known here); end their MLflow runs."""
    if known is None:
        return []
    ledger = Ledger(folder.ledger_file)
    lost = [r for r in ledger.records.values() if r.trial_id not in known and r.status not in TERMINAL]
    for rec in lost:
        del ledger.records[rec.trial_id]
        if rec.mlflow_run_id is not None:
            _end_lost(mlflow, rec.mlflow_run_id)
    if lost:
        ledger.save()
    return lost


def end_unrecorded_runs(folder: SweepFolder, mlflow: MlflowSweep) -> int:
    """End KILLED (tagged LOST) the sweep's child runs still RUNNING that no ledger row names:
    made for a trial in the instant before the kill, before the ledger was saved."""
    known = {r.mlflow_run_id for r in Ledger(folder.ledger_file).records.values()}
    running = mlflow.client.search_runs(
        [mlflow.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{mlflow.parent_run_id}' and attributes.status = 'RUNNING'",
    )
    lost = [run.info.run_id for run in running if run.info.run_id not in known]
    for run_id in lost:
        _end_lost(mlflow, run_id)
    return len(lost)


def _end_lost(mlflow: MlflowSweep, run_id: str) -> None:
    mlflow.end_trial(run_id, Status.LOST, "the driver was killed as this trial started")


def fail_running_study_trials(folder: SweepFolder) -> int:
    """Tell FAIL every Optuna trial still RUNNING in the sweep's study; returns how many."""
    storage = folder.study_url
    names = optuna.get_all_study_names(storage=storage)
    running = 0
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            running += 1
    return running
