"""The Ray Tune side of a sweep: connecting to Ray, and a Tuner whose searcher is Optuna
(define-by-run, through `BudgetAwareOptunaSearch`) and whose scheduler stops weak trials."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch
from ray.tune.trainable.function_trainable import wrap_function

from tuning.records.folder import SweepFolder
from tuning.records.status import DIVERGED_KEY, TIMED_OUT_KEY, Status, ending
from tuning.records.tracking import MlflowSweep
from tuning.run.fit import Fit
from tuning.sweep.budgets import TimeBudgets
from tuning.sweep.callbacks import FirstFailures, ProgressPrinter, TrialRecorder
from tuning.sweep.retention import CheckpointRetention
from tuning.sweep.space import DefineByRun, make_sampler
from tuning.sweep.spec import SweepSpec
from tuning.sweep.trainable import Ended, run_trial
from tuning.sweep.workers import TRIAL_DRIVER, Workers, ends_workers

__all__ = [
    "TUNE_ENVIRONMENT",
    "RenamedDuringUpload",
    "tune_environment",
    "BudgetAwareOptunaSearch",
    "connect",
    "make_scheduler",
    "make_trainable",
    "make_tuner",
]


class BudgetAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED (not COMPLETE with a truncated value) for
    trials the scheduler or a time budget stopped before the budget (a time budget's with the
    user attribute `timed_out`), and COMPLETE with the worst-case value of
    `trainable.diverged_report` (user attribute `diverged`) for trials that diverged.

    A trial may end twice: a driver killed after Optuna was told but before Tune saved the
    step replays it on resume (`reconcile.ended_results`); the second telling is skipped."""

    def __init__(self, *args: Any, budget: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the intermediate value, unless Optuna was already told the trial ended (a
        trial replaying its recorded end on resume, see the class docstring)."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna how the trial ended (see the class docstring)."""
        if trial_id in self._completed_trials or error or not result:
            super().on_trial_complete(trial_id, result, error)
            return
        end = ending(result, self.budget)
        if end.reason is not None:  # the divergence or time budget, as the study's user attribute
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # told already, see reconcile
                attr = DIVERGED_KEY if end.status == Status.DIVERGED else TIMED_OUT_KEY
                self._ot_trials[trial_id].set_user_attr(attr, end.reason)
        if end.has_value:
            super().on_trial_complete(trial_id, result, error)
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
        self._completed_trials.add(trial_id)


def make_scheduler(spec: SweepSpec) -> TrialScheduler:
    """The sweep file's `scheduler:` as a Tune scheduler, on the epoch count."""
    s, metric, mode = spec.scheduler, spec.metric.name, spec.metric.mode
    common = {"time_attr": "training_iteration", "metric": metric, "mode": mode}
    if s.type == "asha":
        return ASHAScheduler(
            max_t=spec.budget, grace_period=spec.grace_period, reduction_factor=s.reduction_factor, **common
        )
    if s.type == "hyperband":
        return HyperBandScheduler(max_t=spec.budget, reduction_factor=s.reduction_factor, **common)
    if s.type == "median":
        return MedianStoppingRule(grace_period=spec.grace_period, min_samples_required=3, **common)
    return FIFOScheduler()


TUNE_ENVIRONMENT = {
    # Tune's own reporter is replaced by ProgressPrinter; per-epoch checkpoints of fast
    # trials would otherwise flood the log with snapshot-frequency warnings.
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # The ledger and MLflow record every result; Tune's CSV and TensorBoard writers would
    # repeat that on the driver while the trial waits for its next `train` call. Its JSON
    # writer stays (see make_tuner): Tune's ResultGrid reads result.json.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Tune saves its experiment state after every controller step, not every ~10 s: a driver
    # killed with SIGKILL then leaves it at most one event behind the ledger, which `resume`
    # reconciles (tuning.sweep.reconcile).
    "TUNE_GLOBAL_CHECKPOINT_S": "0",
}


class RenamedDuringUpload(logging.Filter):
    """Tune saves its state at every controller step (TUNE_GLOBAL_CHECKPOINT_S=0) and uploads
    it in the background while the next step writes; an upload that lists a file Tune then
    replaces (its searcher state is written to a temporary file and renamed) fails with "No
    such file or directory", which Tune logs as an error with a traceback. The next step's
    upload carries the state, so that failure is shown as one warning line instead."""

    LOGGER = "ray.tune.execution.experiment_state"

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record of that failure; let every other record through unchanged."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, OSError) and "No such file or directory" in str(error):
            record.msg = f"{record.getMessage()} a file replaced during the upload ({error}); the next save uploads it"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@contextlib.contextmanager
def tune_environment() -> Iterator[None]:
    """Tune's settings for a sweep (`TUNE_ENVIRONMENT`; a value the user set wins), in the
    environment while the Tuner runs (Tune reads them then, in the driver) and as they were
    after it, so a program that runs a sweep through the API keeps its own environment; and
    Tune's harmless upload race logged as a warning (`RenamedDuringUpload`)."""
    saved = {key: os.environ.get(key) for key in TUNE_ENVIRONMENT}
    for key, value in TUNE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    race = RenamedDuringUpload()
    logging.getLogger(RenamedDuringUpload.LOGGER).addFilter(race)
    try:
        yield
    finally:
        logging.getLogger(RenamedDuringUpload.LOGGER).removeFilter(race)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(address: str | None, code: Sequence[Path] = ()) -> None:
    """Join the Ray cluster at `address`, or start Ray locally (None); no-op if connected.

    `code`: the user's packages and modules imported from the current folder (see
    `plugins.local_sources`), shipped to a cluster's nodes with `runtime_env` `py_modules`. A
    local Ray needs nothing shipped: its workers get the driver's folder on their path."""
    if ray.is_initialized():
        return
    runtime_env: dict[str, Any] = {"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}}
    if address is not None and code:
        runtime_env["py_modules"] = [str(path) for path in code]
    ray.init(
        address=address or "local",  # not a `ray start` cluster that happens to run on this machine
        include_dashboard=False,
        logging_level=max(logging.WARNING, logging.getLogger("ray").getEffectiveLevel()),
        log_to_driver=False,
        runtime_env=runtime_env,
    )


def make_trainable(
    spec: SweepSpec, folder: SweepFolder, fit: Fit | None = None, ended: dict[str, Ended] | None = None
) -> Any:
    """`run_trial` bound to the sweep's base config, metric and training function (`fit`, when
    given as an object; else the one the config names) and, on resume, the results of trials
    that ended; with the sweep's per-trial resources (a multi-worker trial's are its workers')."""
    r = spec.resources
    fn = tune.with_parameters(
        run_trial,
        base=spec.base_config(),
        metric=spec.metric.name,
        source=str(folder.spec_file),
        fit=fit,
        ended=ended or {},
        workers=Workers(r.workers, r.cpu, r.gpu) if r.workers > 1 else None,
    )
    if r.workers == 1:
        return tune.with_resources(fn, {"cpu": r.cpu, "gpu": r.gpu})
    return tune.with_resources(ends_workers(wrap_function(fn)), TRIAL_DRIVER)


def make_tuner(
    spec: SweepSpec,
    folder: SweepFolder,
    mlflow: MlflowSweep,
    fit: Fit | None = None,
    keep_checkpoints: bool = False,
) -> tune.Tuner:
    """A new Tuner for the sweep: its study in the folder, its ledger and MLflow callbacks, and
    (unless `keep_checkpoints`) the pruning of ended trials' checkpoints."""
    searcher = BudgetAwareOptunaSearch(
        space=DefineByRun(spec.space),
        metric=spec.metric.name,
        mode=spec.metric.mode,
        sampler=make_sampler(spec),
        storage=optuna.storages.RDBStorage(folder.study_url),
        study_name=folder.name,
        points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
        budget=spec.budget,
    )
    first_failures = FirstFailures(min(spec.search.num_samples, max(2, spec.search.max_concurrent)))
    callbacks = [
        TrialRecorder(folder.ledger_file, spec.budget, mlflow),
        ProgressPrinter(spec.metric.name, spec.budget, spec.search.num_samples, folder),
        JsonLoggerCallback(),
        first_failures,
    ]
    if not keep_checkpoints:
        callbacks.append(CheckpointRetention(folder, spec.metric.name, spec.metric.mode, spec.budget))
    scheduler = make_scheduler(spec)
    if spec.search.time_budget_s is not None or spec.search.trial_time_budget_s is not None:
        scheduler = TimeBudgets(scheduler, spec.search.time_budget_s, spec.search.trial_time_budget_s)
    return tune.Tuner(
        make_trainable(spec, folder, fit),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.search.max_concurrent),
            scheduler=scheduler,
            num_samples=spec.search.num_samples,
            trial_dirname_creator=lambda trial: SweepFolder.trial_folder(trial.trial_id),
            reuse_actors=spec.resources.workers == 1,  # see tuning.sweep.workers
        ),
        run_config=tune.RunConfig(
            name=SweepFolder.TUNE,
            storage_path=folder.tune_storage,
            callbacks=callbacks,
            stop=first_failures,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if keep_checkpoints else 2),
            failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
            verbose=0,
        ),
    )
