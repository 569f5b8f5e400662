"""The Ray Tune callbacks of a sweep, on the driver after every event: the ones that keep the
ledger (`tuning.records.ledger`) and the MLflow runs in step with Tune, so a running,
interrupted or crashed sweep always has an up-to-date table for `best`, `report` and
`resume`; the stop of a sweep whose first trials all fail alike; and the progress printer, one
line per trial event."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.stopper import Stopper
from rich.console import Console
from rich.markup import escape
from typing_extensions import override

from tuning.errors import user_frames
from tuning.records.files import write_atomically
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord, format_params, format_value
from tuning.records.status import DIVERGED_KEY, ENDED, TERMINAL, Status, ending
from tuning.run.fit import ProtocolError
from tuning.transient import Transients, transient

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from tuning.records.tracking import MlflowSweep

__all__ = ["FirstFailures", "ProgressPrinter", "TrialRecorder", "is_protocol_error", "sweep_failure"]


def failure_key(error: str, trace: str) -> str:
    """What makes two trials' failures the same one: the exception's type and the innermost
    line of the user's own files it came from; not the message, which can hold sampled values
    ("(32x29 and 30x128)" in one trial, "(32x29 and 30x64)" in the next). Without a frame of
    the user's (a data set that cannot load, a workload's own error), the whole error line."""
    frames = user_frames(trace)
    if not frames:
        return error
    inner = re.search(r" raised ([\w.]+): ", error)
    kind = inner.group(1) if inner else error.split(":", 1)[0]
    return f"{kind} at {frames[-1].split(' in ', 1)[0]}"


def _trace(trial: Trial) -> str:
    path = trial.error_file
    return Path(path).read_text() if path and Path(path).exists() else ""


def _error_text(trial: Trial) -> str:
    """The exception line of the trial's latest traceback (the driver-side error file; the
    copy in storage is synced later)."""
    lines = [line.strip() for line in _trace(trial).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error (see the trial's error.txt)"


class TrialRecorder(Transients, tune.Callback):
    """Keeps the ledger, and the MLflow child runs if `mlflow` is given, in step with Tune.

    Holds only paths and names when pickled with the Tuner; state is reloaded from disk in
    `setup`, so a resumed sweep continues the same records and MLflow runs. An ENDED record
    is final: events Tune sends again for it (a trial replaying its recorded last result on
    resume, see `reconcile.ended_results`) change nothing."""

    def __init__(self, ledger_path: Path, budget: int, mlflow: MlflowSweep | None) -> None:
        self.ledger_path = ledger_path
        self.budget = budget
        self.mlflow = mlflow

    @transient
    def ledger(self) -> Ledger:
        """The ledger, read from disk on first use."""
        return Ledger(self.ledger_path)

    @override
    def setup(self, **info: Any) -> None:
        self.ledger = Ledger(self.ledger_path)

    def _record(self, trial: Trial) -> TrialRecord:
        rec = self.ledger.records.get(trial.trial_id)
        if rec is None:
            rec = TrialRecord(trial.trial_id, dict(trial.config))
            self.ledger.records[trial.trial_id] = rec
        if rec.status != Status.RUNNING:
            rec.status, rec.ended, rec.error = Status.RUNNING, None, None
            if self.mlflow is not None and rec.mlflow_run_id is not None:
                self.mlflow.reopen(rec.mlflow_run_id)
        if self.mlflow is not None and rec.mlflow_run_id is None:
            rec.mlflow_run_id = self.mlflow.start_trial(rec.trial_id, rec.params)
        return rec

    def _ended(self, trial: Trial) -> bool:
        rec = self.ledger.records.get(trial.trial_id)
        return rec is not None and rec.status in ENDED

    @override
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self._ended(trial):
            return
        self._record(trial)
        self.ledger.save()

    @override
    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        if self._ended(trial):
            return
        rec = self._record(trial)
        if DIVERGED_KEY in result:  # its metrics are the worst-case stand-ins Optuna gets, not measurements
            return
        epoch = int(result.get("epoch", 0))
        kept = ("epoch", "node_id", "started_at_epoch")
        row = {k: v for k, v in result.items() if k in kept or k.startswith(("val_", "train_"))}
        row.update({k: result[k] for k in ("aux_loss", "epoch_time_s") if k in result})
        rec.history = [h for h in rec.history if h.get("epoch", 0) < epoch] + [row]
        rec.epochs = epoch
        rec.checkpoint = result.get("checkpoint_dir_name") or rec.checkpoint
        node = result.get("node_id")
        if node and node not in rec.node_ids:
            rec.node_ids.append(node)
        if self.mlflow is not None and rec.mlflow_run_id is not None:
            self.mlflow.log_metrics(rec.mlflow_run_id, row, epoch)
        self.ledger.save()

    @override
    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self._ended(trial):
            return
        rec = self._record(trial)
        end = ending(trial.last_result, self.budget)
        self._finish(rec, end.status, end.reason)

    @override
    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self._ended(trial):
            return
        rec = self._record(trial)
        source = trial.error_file
        if source and Path(source).exists():
            kept = SweepFolder.at(self.ledger_path.parent).error_file(trial.trial_id)
            kept.parent.mkdir(exist_ok=True)
            write_atomically(kept, Path(source).read_text())
        self._finish(rec, Status.FAILED, _error_text(trial))

    def _finish(self, rec: TrialRecord, status: str, error: str | None) -> None:
        rec.status, rec.error, rec.ended = status, error, time.time()
        if self.mlflow is not None and rec.mlflow_run_id is not None:
            self.mlflow.end_trial(rec.mlflow_run_id, status, error)
        self.ledger.save()

    def record_test(self, trial_id: str, test: dict[str, float]) -> None:
        """The exported trial's test metrics, into its ledger row and its MLflow run."""
        rec = self.ledger.records[trial_id]
        rec.test = dict(test)
        if self.mlflow is not None and rec.mlflow_run_id is not None:
            self.mlflow.log_metrics(rec.mlflow_run_id, test, rec.epochs)
        self.ledger.save()

    def close_unfinished(self) -> list[TrialRecord]:
        """After an interrupted fit: mark what did not finish INTERRUPTED (MLflow: KILLED)."""
        self.ledger = Ledger(self.ledger_path)
        left = [r for r in self.ledger.records.values() if r.status not in TERMINAL]
        for rec in left:
            rec.status, rec.ended = Status.INTERRUPTED, time.time()
            if self.mlflow is not None and rec.mlflow_run_id is not None:
                self.mlflow.end_trial(rec.mlflow_run_id, Status.INTERRUPTED, None)
        self.ledger.save()
        return left


class FirstFailures(tune.Callback, Stopper):
    """Stops a sweep whose first `limit` finished trials all failed with the same error (a
    data set that cannot load, a plugin that raises, a bug at one line of the user's code;
    see `failure_key`), instead of spending the budget on it.

    A Tune callback (it sees the failures) and a Tune stopper (it stops every trial) in one
    object, passed as both; after it trips, `sweep_failure` reads the reason from the ledger."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.errors: list[str] = []
        self.succeeded = False

    @override
    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.succeeded = True

    @override
    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.errors.append(failure_key(_error_text(trial), _trace(trial)))

    @override
    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    @override
    def stop_all(self) -> bool:
        return not self.succeeded and len(self.errors) >= self.limit and len(set(self.errors)) == 1


def is_protocol_error(error: str | None) -> bool:
    """Whether a ledger's error line is a training function's broken protocol (bad input)."""
    return error is not None and error.startswith(f"{ProtocolError.__module__}.{ProtocolError.__qualname__}:")


def sweep_failure(records: list[TrialRecord], folder: SweepFolder) -> str | None:
    """The error every trial of a sweep failed with (the first trial's words), if every trial
    failed with the same one (`failure_key`, from the tracebacks kept in `folder`)."""
    if not records or any(r.status != Status.FAILED for r in records):
        return None
    keys = {failure_key(r.error or "", _kept_trace(folder, r.trial_id)) for r in records}
    return records[0].error if len(keys) == 1 else None


def _kept_trace(folder: SweepFolder, trial_id: str) -> str:
    path = folder.error_file(trial_id)
    return path.read_text() if path.exists() else ""


WORDS = {
    Status.COMPLETE: "[green]complete[/green]",
    Status.PRUNED: "[yellow]pruned[/yellow]  ",
    Status.TIMED_OUT: "[yellow]timed out[/yellow]",
}


class ProgressPrinter(Transients, tune.Callback):
    """Readable in a terminal and in a CI log alike (no cursor tricks)."""

    def __init__(self, metric: str, budget: int, num_samples: int, folder: SweepFolder) -> None:
        self.metric = metric
        self.budget = budget
        self.num_samples = num_samples
        self.folder = folder
        self.errors_shown: dict[str, str] = {}

    @transient
    def console(self) -> Console:
        """The console, made on first use (a Console does not pickle)."""
        return Console(highlight=False, soft_wrap=True)

    @override
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.console.print(f"[cyan]start[/cyan]    {trial.trial_id}  {escape(format_params(trial.config))}")

    @override
    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        running = sum(t.status == "RUNNING" for t in trials)
        self.console.print(
            f"           {trial.trial_id}  epoch {result.get('epoch')}/{self.budget}  "
            f"{escape(self.metric)} {format_value(result.get(self.metric))}   [dim]({running} running)[/dim]"
        )

    @staticmethod
    def _done(trials: list[Trial], trial: Trial) -> int:
        """Finished trials including `trial` (whose own status may not be updated yet)."""
        return 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)

    @override
    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        last = trial.last_result or {}
        end = ending(last, self.budget)
        epochs = last.get("epoch", 0)
        done = f"[dim]({self._done(trials, trial)}/{self.num_samples} done)[/dim]"
        if end.status == Status.DIVERGED:
            self.console.print(f"[magenta]diverged[/magenta] {trial.trial_id}  {escape(str(end.reason))}  {done}")
            return
        value = format_value(last.get(self.metric))
        after = f"{escape(self.metric)} {value} after {epochs} epochs" if epochs else "before its first report"
        if end.status == Status.TIMED_OUT:
            after = f"{after}: {escape(str(end.reason))}"
        self.console.print(f"{WORDS[end.status]} {trial.trial_id}  {after}  {done}")

    @override
    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """One line per failed trial; the first time an error is seen, the frames of it that are
        in the user's own files; the whole traceback stays in the sweep folder."""
        done = self._done(trials, trial)
        trace_file = self.folder.error_file(trial.trial_id)
        trace = trace_file.read_text() if trace_file.exists() else ""
        lines = [line for line in trace.splitlines() if line.strip()]
        error = lines[-1].strip() if lines else "unknown error"
        first = self.errors_shown.setdefault(error, trial.trial_id)
        told = escape(error) if first == trial.trial_id else f"the same error as {first}"
        self.console.print(
            f"[red]failed[/red]   {trial.trial_id}  {told}  [dim]({done}/{self.num_samples} done; "
            f"traceback: {escape(str(trace_file))})[/dim]"
        )
        if first == trial.trial_id:
            for frame in user_frames(trace):
                self.console.print(f"           [dim]at[/dim] {escape(frame)}")
