"""A multi-worker trial ends as a one-worker trial would: with the exception its worker raised."""

from ray.exceptions import RayTaskError
from ray.train import WorkerGroupError

from tuning.sweep.workers import _cause


def test_the_lowest_ranks_own_exception_comes_out_of_ray_trains_wrappers():
    own = ValueError("no data here")
    wrapped = RayTaskError("fit", "traceback", own)
    error = WorkerGroupError("2 workers failed", {1: RuntimeError("rank 1"), 0: wrapped})
    assert _cause(error) is own
    assert _cause(own) is own
