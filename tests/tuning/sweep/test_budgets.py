"""TimeBudgets on a controller stand-in (the sweeps that run it are in
tests/tuning/integration/test_fit.py): which trials it stops, when, with what reason, and what
it leaves to the scheduler it wraps."""

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, HyperBandScheduler

from tuning.records.status import TIMED_OUT_KEY
from tuning.sweep import budgets
from tuning.sweep.budgets import TimeBudgets


class _Controller:
    """The part of Tune's controller a scheduler may use: live trials, stop_trial, search_alg."""

    def __init__(self, trials: list[Trial]) -> None:
        self.trials, self.stopped, self.finished = trials, [], False
        self.search_alg = self

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.trials if t not in self.stopped]

    def get_trials(self) -> list[Trial]:
        return []  # what FIFOScheduler chooses from: nothing pending here

    def stop_trial(self, trial: Trial) -> None:
        self.stopped.append(trial)

    def set_finished(self) -> None:
        self.finished = True


def _running(trial_id: str) -> Trial:
    trial = Trial("__fake", stub=True, trial_id=trial_id)
    trial.set_status(Trial.RUNNING)
    trial.run_metadata.last_result = {"epoch": 1, "val_loss": 0.5}
    return trial


def test_a_trial_past_its_budget_is_stopped_with_the_reason_in_its_last_result(monkeypatch):
    clock = iter([0.0, 3.0, 5.0]).__next__
    monkeypatch.setattr(budgets.time, "monotonic", clock)
    a, b = _running("a"), _running("b")
    b.set_status(Trial.PENDING)  # a pending trial's clock has not started
    controller = _Controller([a, b])
    scheduler = TimeBudgets(FIFOScheduler(), sweep_seconds=None, trial_seconds=4)
    scheduler.choose_trial_to_run(controller)  # t=0: a's clock starts
    scheduler.choose_trial_to_run(controller)  # t=3
    assert controller.stopped == []
    scheduler.choose_trial_to_run(controller)  # t=5
    assert controller.stopped == [a] and not controller.finished
    assert a.last_result[TIMED_OUT_KEY] == "stopped after 4 s (search.trial_time_budget_s)"
    assert a.last_result["val_loss"] == 0.5  # what it reported stays


def test_the_sweep_budget_stops_every_live_trial_and_the_search(monkeypatch):
    monkeypatch.setattr(budgets.time, "monotonic", iter([10.0, 16.5]).__next__)
    trials = [_running("a"), _running("b")]
    controller = _Controller(trials)
    scheduler = TimeBudgets(FIFOScheduler(), sweep_seconds=6, trial_seconds=None)
    scheduler.choose_trial_to_run(controller)
    assert controller.stopped == []
    assert scheduler.choose_trial_to_run(controller) is None
    assert controller.stopped == trials and controller.finished
    assert all("search.time_budget_s=6" in t.last_result[TIMED_OUT_KEY] for t in trials)


def test_what_tune_asks_of_a_scheduler_is_the_wrapped_ones():
    inner = HyperBandScheduler(metric="val_loss", mode="min", max_t=3)
    scheduler = TimeBudgets(inner, sweep_seconds=None, trial_seconds=5)
    assert scheduler.metric == "val_loss"
    assert scheduler.supports_buffered_results is False  # HyperBand's answer, not the base class's
