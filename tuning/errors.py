"""Errors that are the user's to fix: the CLI prints their message (one paragraph) and exits 2."""

from __future__ import annotations

from fishleg.config import ConfigError

__all__ = ["ConfigError", "DatasetUnavailable", "NonFiniteLoss", "UserError", "USER_ERRORS"]


class UserError(Exception):
    """Bad input or environment: a clear message, no traceback, exit status 2."""


class DatasetUnavailable(UserError):
    """A data set is neither on disk nor downloadable."""


class NonFiniteLoss(RuntimeError):
    """Training produced NaN/inf; the last good checkpoint is kept."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, ConfigError)
