"""The built-in training loop (`Trainer`, run as a training function by `WorkloadFit`), and
`fishleg-tune train` (`train_to_folder`), which runs any training function to a folder."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from fishleg import distributed
from fishleg.optimizer import FishLeg
from tuning.errors import ConfigError, NonFiniteLoss, UserError
from tuning.records.tracking import flatten, maybe_run
from tuning.run.batches import Batches
from tuning.run.config import RunConfig, load_run_config, save_config
from tuning.run.devices import resolve_device
from tuning.run.fit import CHECKPOINT_FILE, Fit, FitContext, LocalContext, load_fit, load_saved
from tuning.workloads import build_workload

__all__ = ["TrainResult", "Trainer", "WorkloadFit", "fit_for", "train_to_folder"]

EVAL_BATCH = 1000


@dataclass
class Trainer:
    """One run of one config: `run_epoch()` trains an epoch and evaluates it.

    Everything that decides the next epoch (model, optimizer, batching RNG, epoch, history)
    is in `state_dict()`, so a run restored from a checkpoint continues identically on CPU.

    In a process group of several ranks (a multi-worker trial) it trains data-parallel:
    `training.batch_size` is the global batch (a multiple of the ranks); each rank trains on
    its part of every batch through a DistributedDataParallel wrapper, with its own share of
    the training inputs as FishLeg's aux data, so the run follows the one-process run of the
    same batch size. Every rank evaluates the whole split (the replicas are identical)."""

    config: RunConfig
    source: str = "config"
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.config
        self.device = resolve_device(cfg.training.device)
        self.workload = build_workload(cfg.workload, cfg.training.seed, self.source)
        w = self.workload
        self.model = w.model.to(self.device)
        self.likelihood = w.likelihood.to(self.device)
        self.train = w.batches("train", self.device)
        self.val = w.batches("val", self.device)
        rank, ranks = self.part = (distributed.rank(), distributed.world_size())
        self.net = self.model if ranks == 1 else DistributedDataParallel(self.model)
        aux_data = self.train.inputs if ranks == 1 else self.train.share(rank, ranks)
        self.optimizer = cfg.build_optimizer(self.model, likelihood=self.likelihood, aux_data=aux_data)
        self.generator = torch.Generator().manual_seed(cfg.training.seed)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names this run reports each epoch."""
        return self.workload.metrics

    def train_epoch(self) -> Tensor:
        """One pass over the training set in shuffled batches; returns the mean loss (a tensor,
        the same on every rank)."""
        self.model.train()
        total = torch.zeros((), device=self.device)
        steps = 0
        batches = self.train.iterate(
            self.config.training.batch_size, shuffle=True, generator=self.generator, part=self.part
        )
        for x, y in batches:
            if self.workload.augment is not None:
                x = self.workload.augment(x, self.generator)
            loss = self.optimizer.step(functools.partial(self._loss_and_gradients, x, y))
            total += loss.detach()
            steps += 1
        mean = total / steps
        distributed.mean_across_ranks([mean])  # every rank reports the global batch's loss
        return mean

    def _loss_and_gradients(self, x: Tensor, y: Tensor) -> Tensor:
        """The step's closure (optimizers may call it again, e.g. FishLeg's adaptive damping)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.likelihood.nll(self.net(x), y)
        loss.backward()
        return loss

    @torch.no_grad()
    def _evaluate(self, batches: Batches, prefix: str) -> dict[str, float]:
        """Mean NLL (and accuracy for classifiers) over a split in eval mode, as `{prefix}_loss`…"""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for xb, yb in batches.iterate(EVAL_BATCH, shuffle=False):
            out = self.model(xb)
            loss_sum += self.likelihood.nll(out, yb) * len(xb)
            if self.workload.classifier:
                correct += (out.argmax(1) == yb).sum()
        self.model.train()
        metrics = {f"{prefix}_loss": float(loss_sum) / len(batches)}
        if self.workload.classifier:
            metrics[f"{prefix}_accuracy"] = float(correct) / len(batches)
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Validation metrics: what every epoch reports and what sweeps choose on."""
        return self._evaluate(self.val, "val")

    def test(self) -> dict[str, float]:
        """Test metrics (`test_loss`, …). Call once, for a configuration already chosen on
        validation: the test split is read here and nowhere else."""
        return self._evaluate(self.workload.batches("test", self.device), "test")

    def run_epoch(self) -> dict[str, float]:
        """Train and evaluate one epoch. Raises NonFiniteLoss (state left at the last good epoch
        only in checkpoints: the caller should not save after this)."""
        start = time.perf_counter()
        try:
            train_loss = float(self.train_epoch())
        except torch.linalg.LinAlgError as exc:  # a preconditioner's factorisation of non-finite statistics
            reason = str(exc).splitlines()[0]
            raise NonFiniteLoss(
                f"epoch {self.epoch + 1}: the optimizer's linear algebra failed ({reason}); lower lr or raise damping"
            ) from None
        metrics: dict[str, float] = {"epoch": self.epoch + 1, "train_loss": train_loss}
        metrics.update(self.evaluate())
        if not all(math.isfinite(metrics[k]) for k in ("train_loss", "val_loss")):
            raise NonFiniteLoss(
                f"epoch {self.epoch + 1}: loss became {train_loss} (train) / {metrics['val_loss']} (validation); "
                "lower lr or raise damping"
            )
        if isinstance(self.optimizer, FishLeg) and not bool(self.optimizer.is_finite()):
            raise NonFiniteLoss(f"epoch {self.epoch + 1}: FishLeg's λ became non-finite; lower aux_lr or raise damping")
        if isinstance(self.optimizer, FishLeg) and self.optimizer.curvature.aux_step_count:
            metrics["aux_loss"] = float(self.optimizer.curvature.last_aux_loss)  # none before the aux loop's first step
        metrics["epoch_time_s"] = time.perf_counter() - start
        self.epoch += 1
        self.history.append(metrics)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides the next epoch (see the class docstring)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict` of the same config."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])


class WorkloadFit:
    """The built-in training loop as a training function (`tuning.run.fit`): a `Trainer` of the
    config's workload, one report per epoch with the trainer's whole state as checkpoint.

    `prepare` builds the trainer ahead of the call (so bad data or a missing device fail
    before anything is written); after the call, `trainer` holds the trained run."""

    def __init__(self, source: str = "config") -> None:
        self.source = source
        self.trainer: Trainer | None = None

    def prepare(self, config: RunConfig) -> Trainer:
        """The Trainer this function will train (built once)."""
        if self.trainer is None:
            self.trainer = Trainer(config, source=self.source)
        return self.trainer

    def __call__(self, config: RunConfig, context: FitContext) -> None:
        """Train the workload from the context's checkpoint to the budget, reporting each epoch."""
        trainer = self.prepare(config)
        if context.checkpoint is not None:
            trainer.load_state_dict(context.checkpoint)
        while trainer.epoch < config.training.epochs:
            context.report(trainer.run_epoch(), checkpoint=trainer.state_dict())


def fit_for(config: RunConfig, source: str = "config") -> Fit:
    """What trains `config`: the built-in loop for a workload, else its training function."""
    if config.trainable is None:
        return WorkloadFit(source)
    return load_fit(config.trainable.name, source)


@dataclass
class TrainResult:
    """Where a `train_to_folder` run wrote, its last epoch's metrics, epochs run and test
    metrics (empty for a training function: its test split is its own)."""

    output: Path
    metrics: dict[str, float]
    epochs: int
    test: dict[str, float]


def _check_output(output: Path, config: RunConfig, allowed: bool) -> None:
    saved = output / "config.yaml"
    if allowed or not saved.exists():
        return
    try:
        same = load_run_config(saved) == config
    except ConfigError:
        same = False
    if not same:
        raise UserError(
            f"--output {output} holds the run of another config ({saved}); give another --output, "
            "--resume to continue that run, or --overwrite to replace it."
        )


def train_to_folder(
    config: RunConfig,
    output: Path,
    *,
    fit: Fit | None = None,
    source: str = "config",
    resume: bool = False,
    mlflow_uri: str | None = None,
    experiment: str = "fishleg-tune",
    echo: Callable[[str], None] = print,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """`fishleg-tune train`: per-epoch metrics (metrics.jsonl) and the newest checkpoint
    (checkpoint.pt) in `output`, then, for a workload, the test metrics once at the end
    (test_metrics.json); `resume` continues from the checkpoint there. `fit`: the training
    function (default: the config's). A non-finite loss raises NonFiniteLoss saying which
    checkpoint, if any, is kept. An `output` that holds the run of another config is refused
    unless `overwrite` (or `resume`, which continues it)."""
    fn = fit if fit is not None else fit_for(config, source)
    _check_output(output, config, resume or overwrite)
    device = resolve_device(config.training.device)
    if isinstance(fn, WorkloadFit):
        fn.prepare(config)  # bad data or device fail here, before anything is written
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot use it as the output folder ({exc.strerror}).") from None
    save_config(config, output / "config.yaml")
    ckpt = output / CHECKPOINT_FILE
    restored = load_saved(ckpt, device) if resume and ckpt.exists() else None
    metrics_file = output / "metrics.jsonl"
    earlier = _read_rows(metrics_file, restored.epoch) if restored is not None else []
    metrics_file.write_text("".join(json.dumps(m) + "\n" for m in earlier))
    if restored is not None:
        echo(f"resumed from {ckpt} at epoch {restored.epoch}")
    total = config.training.epochs
    bar = None if progress is None else progress.add_task("epochs", total=total, completed=len(earlier))
    with maybe_run(mlflow_uri, experiment, output.name) as run:

        def show(row: dict[str, Any]) -> None:
            if run is not None:
                run[0].log_metrics(run[1], row, step=int(row["epoch"]))
            shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "epoch_time_s"))
            echo(f"epoch {row['epoch']}/{total}  {shown}  ({row['epoch_time_s']:.1f}s)")
            if bar is not None:
                val = row.get("val_loss", math.nan)
                progress.update(bar, completed=row["epoch"], description=f"val_loss {val:.4g}")

        if run is not None:
            run[0].log_params(run[1], flatten(config.to_dict()))
            for row in earlier:
                run[0].log_metrics(run[1], row, step=int(row["epoch"]))
        context = LocalContext(config, source=source, output=output, restored=restored, on_report=show)
        try:
            fn(config, context)
        except NonFiniteLoss as exc:
            kept = (
                f"the checkpoint of epoch {context.saved.epoch} is kept in {ckpt}"
                if context.saved is not None
                else "no epoch completed, so there is no checkpoint"
            )
            raise NonFiniteLoss(f"{exc}; {kept}") from None
        test: dict[str, float] = {}
        if isinstance(fn, WorkloadFit) and fn.trainer is not None:
            test = fn.trainer.test()
            (output / "test_metrics.json").write_text(json.dumps({"epoch": fn.trainer.epoch, **test}))
            if run is not None:
                run[0].log_metrics(run[1], test, step=fn.trainer.epoch)
    rows = earlier + context.history
    return TrainResult(output, rows[-1] if rows else {}, context.epoch, test)


def _read_rows(path: Path, upto: int) -> list[dict[str, Any]]:
    """The metrics.jsonl rows of epochs up to `upto` (the restored checkpoint's)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if int(r.get("epoch", 0)) <= upto]
