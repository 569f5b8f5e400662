"""Tune's settings for a sweep: scoped to it, and Tune's harmless upload race told in one line;
the searcher's telling of each trial's end to Optuna."""

import logging
import os
import sys

import optuna

from tuning.records.status import DIVERGED_KEY, TIMED_OUT_KEY
from tuning.sweep.space import DefineByRun
from tuning.sweep.spec import ParamSpec
from tuning.sweep.tuner import TUNE_ENVIRONMENT, BudgetAwareOptunaSearch, RenamedDuringUpload, tune_environment


def _record(error: Exception) -> logging.LogRecord:
    try:
        raise error
    except Exception:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        RenamedDuringUpload.LOGGER, logging.ERROR, __file__, 1, "Saving experiment state failed with exception: ",
        None, exc_info,
    )  # fmt: skip


def test_a_file_replaced_during_the_upload_is_one_warning_line_and_other_errors_pass_unchanged():
    race = _record(
        FileNotFoundError(
            "[Errno 2] Failed to open local file '/s/.1-tmp-searcher.pkl'. Detail: [errno 2] No such file or directory"
        )
    )
    assert RenamedDuringUpload().filter(race)
    assert race.levelno == logging.WARNING and race.exc_info is None
    assert "a file replaced during the upload" in race.getMessage() and "searcher.pkl" in race.getMessage()
    other = _record(PermissionError("[Errno 13] Permission denied"))
    assert RenamedDuringUpload().filter(other)
    assert other.levelno == logging.ERROR and other.exc_info is not None


def test_the_environment_and_the_filter_last_as_long_as_the_sweep():
    logger = logging.getLogger(RenamedDuringUpload.LOGGER)
    before = ({key: os.environ.get(key) for key in TUNE_ENVIRONMENT}, list(logger.filters))
    with tune_environment():
        assert all(os.environ[key] for key in TUNE_ENVIRONMENT)
        assert any(isinstance(f, RenamedDuringUpload) for f in logger.filters)
    assert ({key: os.environ.get(key) for key in TUNE_ENVIRONMENT}, list(logger.filters)) == before


def test_the_searcher_tells_optuna_how_each_trial_ended_and_only_once():
    """A trial that ran the budget is COMPLETE with its value; one the scheduler stopped is
    PRUNED (not COMPLETE with a truncated value); a timed-out one PRUNED with the reason; a
    diverged one COMPLETE with its reported (worst-case) value and the reason; a trial told
    twice (a replayed end on resume) is told once."""
    space = {"optimizer.lr": ParamSpec.model_validate({"type": "float", "low": 1e-3, "high": 1.0, "log": True})}
    storage = optuna.storages.InMemoryStorage()
    searcher = BudgetAwareOptunaSearch(
        space=DefineByRun(space), metric="val_loss", mode="min", storage=storage, study_name="s", budget=3
    )
    ends = {
        "full": {"epoch": 3, "val_loss": 0.2},
        "stopped": {"epoch": 1, "val_loss": 0.9},
        "timed_out": {"epoch": 2, "val_loss": 0.5, TIMED_OUT_KEY: "trial_time_budget_s 60"},
        "diverged": {"epoch": 2, "val_loss": 1e6, DIVERGED_KEY: "loss is nan at epoch 2"},
    }
    for trial_id, last in ends.items():
        assert "optimizer.lr" in searcher.suggest(trial_id)
        searcher.on_trial_result(trial_id, {**last, "epoch": 1, "training_iteration": 1})
        searcher.on_trial_complete(trial_id, last)
    searcher.on_trial_complete("full", {"epoch": 3, "val_loss": 0.1})  # the replayed end: not told again
    told = {t.number: t for t in optuna.load_study(study_name="s", storage=storage).trials}
    states = [(t.state.name, t.value, dict(t.user_attrs)) for t in (told[i] for i in range(4))]
    assert states == [
        ("COMPLETE", 0.2, {}),
        ("PRUNED", 0.9, {}),  # Optuna keeps a pruned trial's last intermediate value
        ("PRUNED", 0.5, {TIMED_OUT_KEY: "trial_time_budget_s 60"}),
        ("COMPLETE", 1e6, {DIVERGED_KEY: "loss is nan at epoch 2"}),
    ]
