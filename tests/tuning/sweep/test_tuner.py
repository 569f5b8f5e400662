"""Tune's settings for a sweep: scoped to it, and Tune's harmless upload race told in one line."""

import logging
import os
import sys

from tuning.sweep.tuner import TUNE_ENVIRONMENT, RenamedDuringUpload, tune_environment


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
