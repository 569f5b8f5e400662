"""Which failed trials Tune retries: those whose process was lost (a killed worker, a dead
node, an out-of-memory kill), which resume from their checkpoint and may well finish; not
those whose own code raised, which would raise again the same way after spending the budget
again (a shape error in the user's `fit`, a broken plugin, a diverged training function).

Ray Tune retries every failure up to `FailureConfig(max_failures=...)` and has no per-error
policy, so `retry_lost_processes_only` wraps `Trial.handle_error` (the one place a failure is
counted, just before `Trial.should_recover` is asked) to count a code failure as past the
limit. Ray is pinned to 2.60 (pyproject.toml); tests/tuning/sweep/test_retries.py checks the
wrapped method against Ray's own `should_recover`."""

from __future__ import annotations

import functools
from typing import Any

from ray.exceptions import RayError, RayTaskError
from ray.tune.experiment import Trial

__all__ = ["is_code_failure", "is_lost_process", "retry_lost_processes_only"]


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
