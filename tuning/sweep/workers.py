"""Trials that span several workers (`resources.workers: N`): the trial's training function
runs on N processes under Ray Train's `TorchTrainer`, started from inside the Tune trial.

Ray Train sets up the process group (gloo on CPU, nccl on GPUs) and places the workers; each
runs the same function with a `WorkerContext`, and the built-in loop trains data-parallel
(`tuning.training.Trainer`). Rank 0's reports are the trial's: they travel through a queue
to the Tune trial, which reports them (and their checkpoints) exactly as a one-worker trial
does, so ASHA, Optuna, MLflow, the ledger, retries and `resume` see no difference. The other
ranks' reports are checked (a non-finite value still stops them) and dropped; with DDP their
models are rank 0's.

Every rank waits at each report for the trial's answer: go on, or stop. When Tune stops the
trial (the scheduler's decision, the end of the sweep), the trial's `cleanup` answers stop
and waits for the workers to end from that report, so that Ray Train ends its run in order
and hands the workers' placement group back for the next trial: a Train run killed with its
trial would keep it (Ray Train's own cleaner of killed runs needs the dashboard's state API).

The Tune trial itself only waits on its workers, so it asks Tune for no CPU; the workers' CPUs
and GPUs are Ray Train's to request. The trial's process is not reused for the next trial."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch.distributed as dist
from ray import tune
from ray.exceptions import RayTaskError
from ray.tune import Trainable
from ray.util.queue import Queue
from typing_extensions import override

from tuning.run.config import RunConfig
from tuning.run.fit import Fit, FitContext, Saved

__all__ = ["TRIAL_DRIVER", "WorkerContext", "Workers", "ends_workers"]

# Tune refuses a request for nothing; the trial's own process asks for one byte of memory and
# no CPU, so N workers of one CPU each fit on N CPUs.
TRIAL_DRIVER = {"memory": 1}

Forward = Callable[[dict[str, Any], Saved | None], None]  # delivers a worker's report in the trial

_DONE = None  # what the relay carries when the workers have ended
STOP_TIMEOUT_S = 300.0  # how long a stopped trial waits for its workers to end (then Tune's own limit)


@dataclass(frozen=True)
class _Run:
    """Workers training in this trial's process: the thread running `TorchTrainer.fit` and
    the flag the trial's cleanup raises to stop them."""

    thread: threading.Thread
    stopping: threading.Event


_RUNS: list[_Run] = []  # of this process (one: a multi-worker trial's process is not reused)


def ends_workers(trainable: type[Trainable]) -> type[Trainable]:
    """`trainable` (a Tune function trainable class) whose cleanup, run when Tune stops the
    trial, stops its workers at their next report and waits until they have ended."""

    class EndsWorkers(trainable):  # type: ignore[misc, valid-type]
        def cleanup(self) -> None:
            _end_runs(super().cleanup)

    return EndsWorkers


def _end_runs(cleanup: Callable[[], None]) -> None:
    """Stop this process's runs of workers around Tune's own `cleanup`, which lets a report
    waiting on Tune go on (to be answered "stop"), and wait for them to end.

    A module function, so that the class `ends_workers` makes (shipped to the trial by value)
    reaches this module's `_RUNS`, not a copy of it."""
    for run in _RUNS:
        run.stopping.set()
    try:
        cleanup()
    finally:
        for run in _RUNS:
            run.thread.join(STOP_TIMEOUT_S)


class _Stopped(Exception):
    """Raised on every rank at the report after which the scheduler stopped the trial."""


class WorkerContext(FitContext):
    """The context on each worker of a multi-worker trial: the device Ray Train gave this
    rank, and rank 0's reports (with the node they ran on) sent to the trial."""

    def __init__(
        self,
        config: RunConfig,
        *,
        source: str,
        metric: str | None,
        restored: Saved | None,
        relay: Queue,
        answers: Queue,
    ) -> None:
        super().__init__(config, source=source, metric=metric, restored=restored)
        self.device = ray.train.torch.get_device()
        self.rank = ray.train.get_context().get_world_rank()
        self.relay = relay
        self.answers = answers

    @override
    def _emit(self, row: dict[str, Any], saved: Saved | None) -> None:
        go = [True]
        if self.rank == 0:
            self.relay.put(({**row, "node_id": ray.get_runtime_context().get_node_id()}, saved))
            go[0] = self.answers.get()
        dist.broadcast_object_list(go, src=0)
        if not go[0]:
            raise _Stopped


def _work(loop: dict[str, Any]) -> None:
    """One worker: the training function on this rank's context (`loop`: see `Workers.__call__`)."""
    config = RunConfig.model_validate(loop["config"])
    context = WorkerContext(
        config,
        source=loop["source"],
        metric=loop["metric"],
        restored=loop["restored"],
        relay=loop["relay"],
        answers=loop["answers"],
    )
    try:
        loop["fit"](config, context)
    except _Stopped:
        pass  # the scheduler stopped the trial: end in order


@dataclass(frozen=True)
class Workers:
    """How many processes a trial trains on, and what each asks for."""

    count: int
    cpu: float = 1.0
    gpu: float = 0.0

    def __call__(self, fit: Fit, config: RunConfig, context: FitContext, forward: Forward) -> None:
        """Run `fit` on the workers, from `context`'s checkpoint; `forward(row, saved)` delivers
        each of rank 0's reports in the trial. A worker's exception is raised here as it was
        raised there (the lowest rank's, when several fail), so the trial ends as a one-worker
        trial would."""
        relay = Queue(maxsize=1, actor_options={"num_cpus": 0})
        answers = Queue(maxsize=1, actor_options={"num_cpus": 0})
        restored = None if context.checkpoint is None else Saved(context.epoch, context.checkpoint)
        trainer = ray.train.torch.TorchTrainer(
            _work,
            train_loop_config={
                "config": config.to_dict(),
                "fit": fit,
                "source": context.source,
                "metric": context.metric,
                "restored": restored,
                "relay": relay,
                "answers": answers,
            },
            scaling_config=ray.train.ScalingConfig(
                num_workers=self.count,
                use_gpu=self.gpu > 0,
                resources_per_worker={"CPU": self.cpu, **({"GPU": self.gpu} if self.gpu > 0 else {})},
            ),
            run_config=ray.train.RunConfig(
                name="workers",
                storage_path=tune.get_context().get_trial_dir(),
                failure_config=ray.train.FailureConfig(max_failures=0),  # Tune retries the trial
            ),
        )
        failure: list[BaseException] = []

        def train() -> None:
            try:
                trainer.fit()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the trial's thread below
                failure.append(exc)
            finally:
                relay.put(_DONE)

        run = _Run(threading.Thread(target=train, name="ray-train", daemon=True), threading.Event())
        _RUNS.append(run)
        run.thread.start()
        while (item := relay.get()) is not _DONE:
            if run.stopping.is_set():
                answers.put(False)
                continue
            try:
                forward(*item)
            except BaseException:  # stopped (SystemExit out of tune.report), or the report failed
                answers.put(False)
                raise
            answers.put(True)
        run.thread.join()
        if failure:
            raise _cause(failure[0])


def _cause(exc: BaseException) -> BaseException:
    """The exception a worker raised, out of Ray Train's and Ray's wrappers; for a worker that
    died, Ray's own error for the dead actor (so the trial is retried as a lost process)."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        exc = failures[min(failures)]
    exc = getattr(exc, "health_check_failure", None) or exc  # Ray Train's WorkerHealthCheckFailedError
    while isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    return exc
