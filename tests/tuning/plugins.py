"""Workload plugins the tests name as `tests.tuning.plugins:NAME` (importable in Ray workers
too, which start in the driver's working directory, the repository root)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from ray.exceptions import ActorDiedError
from torch import nn

from fishleg.likelihoods import GaussianLikelihood
from tuning.workloads.base import Workload
from tuning.workloads.digits import ClassifierOptions, digits_classifier

_touch_log: Path | None = None
_logged_to: set[Path] = set()  # per log: a process (a pytest worker too) may run several tests' sweeps


def _touched() -> None:
    """Append one line per process (pid, time) to the current log the first time it reads a
    sealed tensor."""
    if _touch_log is None or _touch_log in _logged_to:
        return
    _logged_to.add(_touch_log)
    with _touch_log.open("a") as f:
        f.write(json.dumps({"pid": os.getpid(), "time": time.time()}) + "\n")


class SealedTensor(torch.Tensor):
    """A tensor that records, in the touch log, every process that computes with it."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        _touched()
        return super().__torch_function__(func, types, args, kwargs or {})


def sealed_digits(options: dict[str, Any], seed: int) -> Workload:
    """digits_classifier whose test tensors log each process that touches them
    (`touch_log`: the log file)."""
    global _touch_log
    _touch_log = Path(options["touch_log"])
    w = digits_classifier(ClassifierOptions(hidden=[16]), seed)
    w.test_x = w.test_x.as_subclass(SealedTensor)
    w.test_y = w.test_y.as_subclass(SealedTensor)
    return w


def quadratic(options: dict[str, Any], seed: int) -> Workload:
    """One weight w (from 1), inputs x ≡ √2, targets y ~ N(0, 1), Gaussian NLL: the
    curvature is exactly 2, so plain SGD maps w to (1 − 2·lr)·w + lr·√2·y each step. It
    converges for every lr < 1, to a noise floor that grows with lr (E w² = lr / 2(1 − lr)),
    so the objective has a slope a sampler can follow; it diverges for every lr > 1 (to inf
    within 512 steps of batch 1 once lr ≳ 1.05). `nan_target`: a training row whose target is NaN
    (a statistic poisoned mid-epoch)."""
    n = int(options.get("n", 256))
    x = torch.full((n + 128, 1), 2**0.5)
    y = torch.randn(n + 128, 1, generator=torch.Generator().manual_seed(0))
    if "nan_target" in options:
        y[int(options["nan_target"])] = float("nan")
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 1.0)
    parts = x[:n], y[:n], x[n : n + 64], y[n : n + 64], x[n + 64 :], y[n + 64 :]
    return Workload(model, GaussianLikelihood(), *parts, classifier=False)


def rendezvous_digits(options: dict[str, Any], seed: int) -> Workload:
    """A small digits classifier, built once `count` trials have started (each leaves a file in
    `folder`): that many trials run at once, so on a cluster of one-CPU nodes they run on as
    many nodes, however fast each would otherwise finish."""
    folder = Path(options["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}-{time.time_ns()}").touch()
    deadline = time.monotonic() + 120
    while len(list(folder.iterdir())) < int(options["count"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {options['count']} trials started together")
        time.sleep(0.05)
    return digits_classifier(ClassifierOptions(hidden=[16]), seed)


def sometimes_broken(options: dict[str, Any], seed: int) -> Workload:
    """A small digits classifier, or (`broken: true`) a RuntimeError: a trial that fails."""
    if options.get("broken"):
        raise RuntimeError("broken on purpose")
    return digits_classifier(ClassifierOptions(hidden=[16]), seed)


def fit_quadratic(config: Any, context: Any) -> None:
    """A training function (tuning.run.fit) on the quadratic plugin's data, written as a user
    would: its own loop over a DataLoader, the optimizer the config names, a checkpoint
    each epoch. Options: `fail_at`, a lost worker (Ray's ActorDiedError) in that epoch of the
    first attempt only; `gate` and
    `gate_epoch`, wait before that epoch until the file `gate` exists (a test holds the trial
    at a known point for as long as it needs, instead of racing it)."""
    from torch.utils.data import DataLoader, TensorDataset

    from fishleg.likelihoods import GaussianLikelihood

    opts = config.trainable.options
    w = quadratic({"n": opts.get("n", 64)}, context.seed)
    likelihood = GaussianLikelihood()
    loader = DataLoader(TensorDataset(w.train_x, w.train_y), batch_size=config.training.batch_size, shuffle=False)
    optimizer = config.build_optimizer(w.model, likelihood=likelihood, aux_data=w.train_x, seed=context.seed)
    if context.checkpoint is not None:
        w.model.load_state_dict(context.checkpoint["model"])
        optimizer.load_state_dict(context.checkpoint["optimizer"])
    for epoch in range(context.epoch, config.training.epochs):
        if "gate" in opts and opts["gate_epoch"] == epoch + 1:
            wait_for_file(Path(opts["gate"]))
        if opts.get("fail_at") == epoch + 1 and context.checkpoint is None:
            # A lost worker, as Ray reports one (what a killed Train worker raises in the trial,
            # at once rather than after Ray's health checks notice): Tune retries the trial.
            raise ActorDiedError()
        for x, y in loader:
            optimizer.zero_grad()
            loss = likelihood.nll(w.model(x), y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val = likelihood.nll(w.model(w.val_x), w.val_y)
        state = {"model": w.model.state_dict(), "optimizer": optimizer.state_dict()}
        context.report({"train_loss": loss.detach(), "val_loss": val}, checkpoint=state)


def wait_for_file(path: Path, timeout: float = 300.0) -> None:
    """Block until `path` exists (a test's signal); raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


def fit_silent(config: Any, context: Any) -> None:
    """A training function that never reports."""


def fit_wrong_metric(config: Any, context: Any) -> None:
    """A training function that reports `loss`, not the sweep's `val_loss`."""
    context.report({"loss": 1.0})


def fit_raises(config: Any, context: Any) -> None:
    """A training function that raises in every trial."""
    raise ValueError("no data here")


def fit_interrupts(config: Any, context: Any) -> None:
    """A training function whose own code raises KeyboardInterrupt (as a library's handler might)."""
    raise KeyboardInterrupt("stopped by hand")


def fit_exits(config: Any, context: Any) -> None:
    """A training function that ends the process as a script would."""
    context.report({"val_loss": 1.0})
    sys.exit(0)


def not_a_fit(config: Any) -> None:
    """Takes one argument: not a training function."""


def digits_streamed(options: dict[str, Any], seed: int) -> Workload:
    """digits_classifier's data as Datasets (read through DataLoaders with `num_workers`)."""
    from torch.utils.data import TensorDataset

    w = digits_classifier(ClassifierOptions(hidden=[16]), seed)
    parts = tuple(TensorDataset(x, y) for x, y in ((w.train_x, w.train_y), (w.val_x, w.val_y), (w.test_x, w.test_y)))
    return Workload.from_datasets(
        w.model, w.likelihood, parts, classifier=True, num_workers=int(options.get("num_workers", 0))
    )
