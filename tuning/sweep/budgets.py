"""Time budgets: `search.time_budget_s` for the whole sweep and `search.trial_time_budget_s`
for each trial. A trial past either is stopped (a `fit` that hangs included: Tune stops its
actor, whatever its training thread is doing) and ends TIMED_OUT in the ledger and MLflow;
Optuna, which has no such state, is told PRUNED with the user attribute `timed_out`. Once the
sweep's budget has run out no new trial starts, and the sweep ends as a finished one.

Both are a scheduler around the sweep's own: Tune asks its scheduler which trial to run at
every controller step, so that is where the clocks are read, and `stop_trial` is the public way
a scheduler stops a trial. The reason goes into the trial's last result under `TIMED_OUT_KEY`,
where the ledger, the progress lines and the searcher read it (as they read a divergence)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import TrialScheduler
from typing_extensions import override

from tuning.records.status import TIMED_OUT_KEY

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["TimeBudgets"]


class TimeBudgets(TrialScheduler):
    """The sweep's scheduler, plus the stops of the two budgets (None: no budget); every other
    decision is the wrapped scheduler's. The sweep's clock starts at its first controller step
    (a resumed sweep gets its budget again); a trial's when it is first seen running (again,
    after a retry)."""

    def __init__(self, inner: TrialScheduler, sweep_seconds: float | None, trial_seconds: float | None) -> None:
        self.inner = inner
        self.sweep_seconds = sweep_seconds
        self.trial_seconds = trial_seconds
        self.sweep_start: float | None = None
        self.started: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    @override
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    @override
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    @override
    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        now = time.monotonic()
        if self.sweep_start is None:
            self.sweep_start = now
        if self.sweep_seconds is not None and now - self.sweep_start >= self.sweep_seconds:
            tune_controller.search_alg.set_finished()
            reason = f"stopped when the sweep's time budget ran out (search.time_budget_s={self.sweep_seconds:g})"
            for trial in list(tune_controller.get_live_trials()):
                _stop(tune_controller, trial, reason)
            return None
        if self.trial_seconds is not None:
            for trial in list(tune_controller.get_live_trials()):
                if trial.status != trial.RUNNING:
                    self.started.pop(trial.trial_id, None)
                elif now - self.started.setdefault(trial.trial_id, now) >= self.trial_seconds:
                    reason = f"stopped after {self.trial_seconds:g} s (search.trial_time_budget_s)"
                    _stop(tune_controller, trial, reason)
        return self.inner.choose_trial_to_run(tune_controller)

    @override
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    @override
    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    @override
    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.started.pop(trial.trial_id, None)
        self.inner.on_trial_error(tune_controller, trial)

    @override
    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        return self.inner.on_trial_result(tune_controller, trial, result)

    @override
    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self.started.pop(trial.trial_id, None)
        self.inner.on_trial_complete(tune_controller, trial, result)

    @override
    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self.started.pop(trial.trial_id, None)
        self.inner.on_trial_remove(tune_controller, trial)

    @override
    def debug_string(self) -> str:
        return self.inner.debug_string()

    @override
    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    @override
    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


def _stop(tune_controller: Any, trial: Trial, reason: str) -> None:
    """Stop `trial` with `reason` in its last result (what the callbacks and searcher read)."""
    trial.run_metadata.last_result = {**trial.last_result, TIMED_OUT_KEY: reason}
    tune_controller.stop_trial(trial)
