"""Tune your own training code: a training function and the context it reports through.

A sweep file (or run config) names the function as `trainable: package.module:function`
(explicit `module:function`, as workload plugins). It is called as `fit(config, context)`:
`config` is the trial's `RunConfig` (the tuned `optimizer:` section, `training:`, and the
function's own options in `config.trainable.options`); `context` gives the seed, the device,
the checkpoint to resume from, and `report`, through which each epoch's metrics (and,
optionally, the state to resume from) reach the scheduler, Optuna, MLflow and the ledger.

The same function runs in a sweep trial (`tuning.sweep.trainable.TuneContext`), under
`fishleg-tune train` and in plain Python (`LocalContext`), as a Ray Tune function trainable
does. The built-in training loop is such a function too (`tuning.training.WorkloadFit`).

    def fit(config: RunConfig, context: FitContext) -> None:
        model = make_model(**config.trainable.options).to(context.device)
        optimizer = config.build_optimizer(model, likelihood=likelihood, aux_data=train_loader)
        if context.checkpoint is not None:
            model.load_state_dict(context.checkpoint["model"])
            optimizer.load_state_dict(context.checkpoint["optimizer"])
        for epoch in range(context.epoch, config.training.epochs):
            ...  # one epoch over train_loader
            context.report({"train_loss": ..., "val_loss": ...},
                           checkpoint={"model": model.state_dict(), "optimizer": optimizer.state_dict()})

The test split is the function's own: the toolkit chooses on what it reports, never on test.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuning.errors import NonFiniteLoss, UserError
from tuning.records.files import atomic_path
from tuning.run.config import RunConfig
from tuning.run.devices import resolve_device
from tuning.run.plugins import check_callable_as, import_function

__all__ = [
    "CHECKPOINT_FILE",
    "Fit",
    "FitContext",
    "LocalContext",
    "ProtocolError",
    "Saved",
    "TrainableError",
    "check_fit",
    "function_name",
    "load_fit",
    "load_saved",
    "save_saved",
]

CHECKPOINT_FILE = "checkpoint.pt"


class TrainableError(UserError):
    """A training function that broke the protocol (no report, no sweep metric, a bad value)
    or raised: its message names the file and the function."""


class ProtocolError(TrainableError):
    """A training function that broke the protocol: bad input to fix in the user's code (a
    sweep whose trials all fail with one exits 2), not a crash of it."""


@dataclass(frozen=True)
class Saved:
    """A checkpoint: the state a function gave `report(..., checkpoint=state)` and the number
    of epochs reported when it did."""

    epoch: int
    state: dict[str, Any]


def save_saved(saved: Saved, path: Path) -> None:
    """Write atomically, so a crash mid-write leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save({"epoch": saved.epoch, "state": saved.state}, tmp)


def load_saved(path: Path, device: torch.device | str = "cpu") -> Saved:
    """Read a `save_saved` file (weights_only: tensors, numbers and containers, no code)."""
    data = torch.load(path, map_location=device, weights_only=True)
    return Saved(int(data["epoch"]), data["state"])


class FitContext(ABC):
    """What a training function gets besides its config; see the module docstring.

    `epoch`: epochs reported so far (the resume point after a restore, 0 when fresh).
    `checkpoint`: the state given with the last checkpointed report before this attempt, or
    None. `seed` and `device` come from `training:` (device `auto` resolved here)."""

    def __init__(self, config: RunConfig, *, source: str, metric: str | None = None, restored: Saved | None = None):
        self.config = config
        self.seed = config.training.seed
        self.device = resolve_device(config.training.device)
        self.source = source
        self.metric = metric
        self.epoch = 0 if restored is None else restored.epoch
        self.checkpoint = None if restored is None else restored.state
        self.reports = 0
        self._last = time.perf_counter()

    @property
    def name(self) -> str:
        """The training function's (or workload's) name, for messages."""
        return self.config.subject

    def report(self, metrics: Mapping[str, Any], checkpoint: Mapping[str, Any] | None = None) -> None:
        """One epoch's metrics (`val_*` are what sweeps choose on; numbers or 0-d tensors) and,
        optionally, the state to resume from: anything `torch.load(weights_only=True)` reads
        back (state dicts, tensors, numbers, lists, dicts). `epoch` and `epoch_time_s` are
        added when not given. A non-finite value raises NonFiniteLoss."""
        row = self._checked(metrics)
        now = time.perf_counter()
        row.setdefault("epoch_time_s", now - self._last)
        self._last = now
        self.epoch += 1
        self.reports += 1
        self._emit({"epoch": self.epoch, **row}, None if checkpoint is None else Saved(self.epoch, dict(checkpoint)))

    def _checked(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        where = f"{self.source}: trainable {self.name!r}"
        if not isinstance(metrics, Mapping):
            kind = type(metrics).__name__
            raise ProtocolError(f"{where} reported a {kind}; report a mapping of metric names to numbers.")
        row: dict[str, Any] = {}
        for key, value in metrics.items():
            try:
                row[str(key)] = float(value)
            except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several values
                raise ProtocolError(f"{where} reported {key}={value!r}; metrics must be numbers.") from None
        given = row.pop("epoch", None)
        if given is not None and given != self.epoch + 1:
            raise ProtocolError(f"{where} reported epoch {given:g} as its epoch {self.epoch + 1}; leave `epoch` out.")
        if self.metric is not None and self.metric not in row:
            raise ProtocolError(
                f"{where} reported {sorted(row)} without {self.metric!r}, the sweep's metric.name; "
                "report it every epoch, or rank the sweep by a metric the function reports."
            )
        bad = {k: v for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            raise NonFiniteLoss(f"epoch {self.epoch + 1}: {self.name} reported {bad}; lower lr or raise damping")
        return row

    @abstractmethod
    def _emit(self, row: dict[str, Any], saved: Saved | None) -> None:
        """Deliver one report (with `epoch`) and its checkpoint, if any."""


class LocalContext(FitContext):
    """The context outside a sweep (`fishleg-tune train`, seed re-runs, plain Python).

    Reports are kept in `history` and the newest checkpoint in `saved`; with an `output`
    folder they are also appended to `metrics.jsonl` and written to `checkpoint.pt` there;
    `on_report` (e.g. print a line, log to MLflow) sees each row."""

    def __init__(
        self,
        config: RunConfig,
        *,
        source: str = "config",
        output: Path | None = None,
        restored: Saved | None = None,
        on_report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(config, source=source, restored=restored)
        self.output = output
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
        self.on_report = on_report
        self.history: list[dict[str, Any]] = []
        self.saved = restored

    def _emit(self, row: dict[str, Any], saved: Saved | None) -> None:
        self.history.append(row)
        if saved is not None:
            self.saved = saved
        if self.output is not None:
            if saved is not None:
                save_saved(saved, self.output / CHECKPOINT_FILE)
            with (self.output / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
        if self.on_report is not None:
            self.on_report(row)


Fit = Callable[[RunConfig, FitContext], None]


def load_fit(name: str, source: str = "config") -> Fit:
    """The training function `package.module:function` (imported, not called), checked to take
    (config, context)."""
    fn = import_function(name, f"{source}: trainable.name")
    check_fit(fn, f"{source}: trainable.name: {name!r}")
    return fn


def function_name(fn: Any) -> str:
    """`module:qualname` of a function, as a config names it."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def check_fit(fn: Any, what: str) -> None:
    """`fn` can be called as fn(config, context)."""
    expected = (
        "a training function; a training function takes (config: RunConfig, context: FitContext) "
        "and reports each epoch with context.report(metrics)."
    )
    check_callable_as(fn, (None, None), what, expected)
