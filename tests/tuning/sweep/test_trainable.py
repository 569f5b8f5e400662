"""Which failures Tune retries once `retry_lost_processes_only` is installed: Ray's own
`Trial.should_recover` answers, on real Trial objects and the errors Ray delivers."""

import pytest
from ray.exceptions import ActorDiedError, RayTaskError
from ray.tune.experiment import Trial

from tuning.run.fit import TrainableError
from tuning.sweep.trainable import is_code_failure, retry_lost_processes_only


def _task_error(cause: BaseException) -> RayTaskError:
    """What a trial's `train` task delivers to the driver when `cause` escapes it."""
    return RayTaskError("train", "Traceback ...", cause)


class _Unstored(Trial):
    """A Trial with no storage, so `handle_error` writes no error file (and needs no Ray)."""

    local_path = None


def _trial(max_failures: int) -> Trial:
    trial = _Unstored("__fake", stub=True, max_failures=max_failures)
    trial.set_status(Trial.RUNNING)
    return trial


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (_task_error(TrainableError("fit raised ValueError")), True),
        (_task_error(RuntimeError("shape mismatch (32x29 and 30x128)")), True),
        (_task_error(_task_error(KeyError("nested task"))), True),
        (RayTaskError("train", "Traceback ...", None), True),  # an exception Ray could not unpickle
        (ActorDiedError(), False),  # the trial's process was killed
        (_task_error(ActorDiedError()), False),  # a Train worker of the trial was
    ],
)
def test_code_that_raised_is_told_from_a_lost_process(error, code):
    assert is_code_failure(error) is code


def test_after_install_a_code_failure_is_final_and_a_lost_process_is_retried():
    retry_lost_processes_only()
    retry_lost_processes_only()  # idempotent: one wrapper, not two
    assert Trial.handle_error.__wrapped__.__name__ == "handle_error"
    assert not hasattr(Trial.handle_error.__wrapped__, "__wrapped__")

    raised = _trial(max_failures=3)
    raised.handle_error(_task_error(RuntimeError("fails on purpose")))
    assert not raised.should_recover()

    lost = _trial(max_failures=3)
    for _ in range(3):
        lost.handle_error(ActorDiedError())
        assert lost.should_recover()
    lost.handle_error(ActorDiedError())
    assert not lost.should_recover()  # Ray's own limit still applies to lost processes
