"""The Ray Tune function trainable: one trial = one training function (`tuning.run.fit`; the
built-in loop for a workload) run on one sampled config, reporting through `TuneContext`.

Each report goes to `ray.tune.report`, with its checkpoint when the function gives one; a
trial Tune retries or resumes gets the newest one back as `context.checkpoint`
(`started_at_epoch` in its results says from which epoch this attempt ran, 0 if fresh).
On `resume`, a trial the ledger saw end in the controller step a killed driver never saved
replays its recorded last result instead of training again (see `tuning.sweep.reconcile`).
A workload run that diverges ends cleanly with one last report (see `diverged_report`), so
Tune does not retry it and the sampler learns from it; a training function that reports a
non-finite value fails. The test split is never touched here.

Which failed trials Tune retries: those whose process was lost (a killed worker, a dead node, an
out-of-memory kill), which resume from their checkpoint and may well finish; not those whose
own code raised, which would raise again the same way after spending the budget again (a shape
error in the user's `fit`, a broken plugin, a diverged training function). Ray Tune retries
every failure up to `FailureConfig(max_failures=...)` and has no per-error policy, so
`retry_lost_processes_only` wraps `Trial.handle_error` (the one place a failure is counted, just
before `Trial.should_recover` is asked) to count a code failure as past the limit. Ray is pinned
to 2.60 (pyproject.toml); tests/tuning/sweep/test_trainable.py checks the wrapped method against
Ray's own `should_recover`."""

from __future__ import annotations

import functools
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.exceptions import RayError, RayTaskError
from ray.tune.experiment import Trial
from typing_extensions import override

from tuning.errors import NonFiniteLoss, UserError
from tuning.records.status import DIVERGED_KEY
from tuning.run.config import RunConfig
from tuning.run.fit import (
    CHECKPOINT_FILE,
    Fit,
    FitContext,
    ProtocolError,
    Saved,
    TrainableError,
    load_saved,
    save_saved,
)
from tuning.sweep.spec import apply_params
from tuning.sweep.workers import Workers
from tuning.training import Trainer, fit_for

__all__ = [
    "Ended",
    "TuneContext",
    "diverged_report",
    "is_code_failure",
    "is_lost_process",
    "restore",
    "retry_lost_processes_only",
    "run_trial",
]


def diverged_report(config: RunConfig, epoch: int, reason: str) -> dict[str, Any]:
    """The last result of a workload trial that diverged in `epoch`: the metrics of the same
    model untrained (same seed, so the same initial weights), flagged with `DIVERGED_KEY`.

    Why a value, and this one: Optuna's GP and CMA-ES samplers learn only from COMPLETE trials
    (TPE also from PRUNED), so a diverged trial is told COMPLETE with a value; a diverged run
    is worth no more than not training at all, and the untrained model's metrics are a finite,
    workload-scaled worst case that keeps a GP's standardisation sane (unlike inf or 1e30).
    `train_loss` gets the untrained validation loss (the same distribution)."""
    untrained = Trainer(config, source="sweep trial").evaluate()
    return {"epoch": epoch, "train_loss": untrained["val_loss"], **untrained, DIVERGED_KEY: reason}


@dataclass(frozen=True)
class Ended:
    """How a trial ended, as the ledger recorded it: its last result (for a diverged trial,
    its epoch and `DIVERGED_KEY` reason only) and the path or URI of its last checkpoint."""

    result: dict[str, Any]
    checkpoint: str | None = None


def restore(checkpoint: tune.Checkpoint, device: Any = "cpu") -> Saved:
    """A trial's Tune checkpoint (local or in cloud storage), read."""
    with checkpoint.as_directory() as folder:
        return load_saved(Path(folder) / CHECKPOINT_FILE, device)


class TuneContext(FitContext):
    """The context inside a sweep trial: reports go to `ray.tune.report`, each with the
    node it ran on and the epoch this attempt started at."""

    def forward(self, row: dict[str, Any], saved: Saved | None) -> None:
        """Report a row a worker of a multi-worker trial reported (checked there, with its epoch)."""
        self.epoch = int(row["epoch"])
        self.reports += 1
        self._emit(row, saved)

    @override
    def _emit(self, row: dict[str, Any], saved: Saved | None) -> None:
        row = {**self.extra, **row}  # a worker's row names the node it ran on
        if saved is None:
            tune.report(row)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_saved(saved, Path(folder) / CHECKPOINT_FILE)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(folder))

    @property
    def extra(self) -> dict[str, Any]:
        """What every report of this attempt carries besides the function's metrics."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "started_at_epoch": self.started_at}

    @property
    def started_at(self) -> int:
        """The epoch this attempt started from (0 if fresh, the checkpoint's after a restore)."""
        return self.epoch - self.reports


def _saved_epoch(checkpoint: tune.Checkpoint) -> int:
    """The epoch a checkpoint was saved at; 0 if it is no longer there."""
    try:
        return restore(checkpoint).epoch
    except FileNotFoundError:
        return 0


def replay(config: RunConfig, ended: Ended) -> None:
    """Report a trial's recorded last result again, with a copy of its last checkpoint (Tune
    persists it under its own next name, which may be the original's) if it is still kept
    (`tuning.sweep.retention` deletes those of trials the export does not choose)."""
    if DIVERGED_KEY in ended.result:
        tune.report(diverged_report(config, ended.result["epoch"], ended.result[DIVERGED_KEY]))
        return
    if ended.checkpoint is not None:
        with tempfile.TemporaryDirectory() as folder:
            try:
                tune.Checkpoint(ended.checkpoint).to_directory(folder)
            except FileNotFoundError:
                pass  # pruned: the export does not choose this trial
            else:
                tune.report(ended.result, checkpoint=tune.Checkpoint.from_directory(folder))
                return
    tune.report(ended.result)


def run_trial(
    params: dict[str, Any],
    base: dict[str, Any],
    metric: str,
    source: str = "sweep trial",
    fit: Fit | None = None,
    ended: dict[str, Ended] | None = None,
    workers: Workers | None = None,
) -> None:
    """Run one sampled config's training function to its budget (Tune's function API).

    `fit`: the training function when given as an object (`tuning.search`), else the config's.
    `ended`: the trials that ended before the driver was killed (`reconcile.ended_results`);
    such a trial replays its end, unless Tune's restored state has it already.
    `workers`: the processes to train on, when more than this one (`tuning.sweep.workers`)."""
    config = RunConfig.model_validate(apply_params(base, params))
    fn = fit if fit is not None else fit_for(config, source)
    checkpoint = tune.get_checkpoint()
    last = (ended or {}).get(tune.get_context().get_trial_id())
    if last is not None:  # it ended: what Tune restores it from may since have been deleted (retention)
        if checkpoint is None or _saved_epoch(checkpoint) < last.result["epoch"]:
            replay(config, last)
        return
    restored = None if checkpoint is None else restore(checkpoint)
    context = TuneContext(config, source=source, metric=metric, restored=restored)
    try:
        if workers is None:
            fn(config, context)
        else:
            workers(fn, config, context, context.forward)
    except NonFiniteLoss as exc:
        if config.workload is None:
            raise TrainableError(f"{source}: trainable {config.subject!r} diverged: {exc}") from None
        tune.report({**diverged_report(config, context.epoch + 1, str(exc)), **context.extra})
        return
    except Exception as exc:
        if config.workload is not None or isinstance(exc, UserError) or is_lost_process(exc):
            raise  # a lost worker stays Ray's error, which Tune retries (`retry_lost_processes_only`)
        raise TrainableError(f"{source}: trainable {config.subject!r} raised {type(exc).__name__}: {exc}") from exc
    except KeyboardInterrupt as exc:  # Ray would report its TaskCancelledError, naming no function
        if threading.current_thread() is threading.main_thread():
            raise  # a Ctrl-C: only the main thread receives one
        raise TrainableError(
            f"{source}: trainable {config.subject!r} raised KeyboardInterrupt{f': {exc}' if str(exc) else ''} in its "
            "own code, not a Ctrl-C (a trial runs in a thread Ctrl-C never reaches); to stop a sweep, press Ctrl-C "
            "where fishleg-tune runs: it keeps what finished for `fishleg-tune resume`"
        ) from exc
    except SystemExit as exc:  # Ray would report it as its own internal error, naming no function
        raise TrainableError(
            f"{source}: trainable {config.subject!r} called sys.exit({exc.code}); a training function ends its trial "
            "by returning: return from the function instead"
        ) from None
    if context.reports == 0 and restored is None:
        raise ProtocolError(
            f"{source}: trainable {config.subject!r} returned without calling context.report(metrics); "
            "report each epoch's metrics (with the sweep's metric.name) through the context it is given."
        )


def is_lost_process(exc: BaseException) -> bool:
    """One of Ray's own errors for a process, node or object that went away, as opposed to an
    exception some code raised (which Ray delivers as a RayTaskError)."""
    return isinstance(exc, RayError) and not isinstance(exc, RayTaskError)


def is_code_failure(exc: BaseException | None) -> bool:
    """Whether a trial failed because its code raised: a task error whose innermost cause is
    not a lost process (an exception Ray could not unpickle counts as code)."""
    if not isinstance(exc, RayTaskError):
        return False
    cause: BaseException = exc
    while isinstance(cause, RayTaskError) and cause.cause is not None:
        cause = cause.cause
    return not is_lost_process(cause)


def retry_lost_processes_only() -> None:
    """From now on, in this process, a trial whose code raised is not retried (idempotent)."""
    if getattr(Trial.handle_error, "_counts_code_failures_as_final", False):
        return
    original = Trial.handle_error

    @functools.wraps(original)
    def handle_error(self: Trial, exc: Any = None) -> None:
        original(self, exc)
        if is_code_failure(exc):
            self.run_metadata.num_failures = max(self.run_metadata.num_failures, self.max_failures + 1)

    handle_error._counts_code_failures_as_final = True  # type: ignore[attr-defined]
    Trial.handle_error = handle_error
