"""The training loop, once: `fishleg-tune train` and every sweep trial run this."""

from __future__ import annotations

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

from fishleg.optimizer import FishLeg
from tuning.config import RunConfig, save_config
from tuning.errors import NonFiniteLoss, UserError
from tuning.tracking import flatten, maybe_run
from tuning.workloads import build_workload

__all__ = ["TrainResult", "Trainer", "load_checkpoint", "resolve_device", "save_checkpoint", "train_to_folder"]

EVAL_BATCH = 1000


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; a CUDA device this machine lacks is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise UserError(
                f"training.device: {name!r} but this machine has {count} CUDA device(s); "
                "use auto or cpu" + (f", or cuda:0..cuda:{count - 1}" if count else "") + "."
            )
    return device


@dataclass
class Trainer:
    """One run of one config: `run_epoch()` trains an epoch and evaluates it.

    Everything that decides the next epoch (model, optimizer, batching RNG, epoch, history)
    is in `state_dict()`, so a run restored from a checkpoint continues identically on CPU."""

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
        self.train_x, self.train_y = w.train_x.to(self.device), w.train_y.to(self.device)
        self.val_x, self.val_y = w.val_x.to(self.device), w.val_y.to(self.device)
        self.optimizer = cfg.build_optimizer(self.model, likelihood=self.likelihood, aux_data=self.train_x)
        self.generator = torch.Generator().manual_seed(cfg.training.seed)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names this run reports each epoch."""
        return self.workload.metrics

    def train_epoch(self) -> Tensor:
        """One pass over the training set in shuffled batches; returns the mean loss (a tensor)."""
        self.model.train()
        n = len(self.train_x)
        bs = min(self.config.training.batch_size, n)
        perm = torch.randperm(n, generator=self.generator).to(self.device)
        total = torch.zeros((), device=self.device)
        steps = n // bs
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            x, y = self.train_x[idx], self.train_y[idx]
            if self.workload.augment is not None:
                x = self.workload.augment(x, self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.likelihood.nll(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        return total / steps

    @torch.no_grad()
    def _evaluate(self, x: Tensor, y: Tensor, prefix: str) -> dict[str, float]:
        """Mean NLL (and accuracy for classifiers) over (x, y) in eval mode, as `{prefix}_loss`…"""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for start in range(0, len(x), EVAL_BATCH):
            xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
            out = self.model(xb)
            loss_sum += self.likelihood.nll(out, yb) * len(xb)
            if self.workload.classifier:
                correct += (out.argmax(1) == yb).sum()
        self.model.train()
        metrics = {f"{prefix}_loss": float(loss_sum) / len(x)}
        if self.workload.classifier:
            metrics[f"{prefix}_accuracy"] = float(correct) / len(x)
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Validation metrics: what every epoch reports and what sweeps choose on."""
        return self._evaluate(self.val_x, self.val_y, "val")

    def test(self) -> dict[str, float]:
        """Test metrics (`test_loss`, …). Call once, for a configuration already chosen on
        validation: the test split is read here and nowhere else."""
        w = self.workload
        return self._evaluate(w.test_x.to(self.device), w.test_y.to(self.device), "test")

    def run_epoch(self) -> dict[str, float]:
        """Train and evaluate one epoch. Raises NonFiniteLoss (state left at the last good epoch
        only in checkpoints: the caller should not save after this)."""
        start = time.perf_counter()
        train_loss = float(self.train_epoch())
        metrics: dict[str, float] = {"epoch": self.epoch + 1, "train_loss": train_loss}
        metrics.update(self.evaluate())
        if not all(math.isfinite(metrics[k]) for k in ("train_loss", "val_loss")):
            raise NonFiniteLoss(
                f"epoch {self.epoch + 1}: loss became {train_loss} (train) / {metrics['val_loss']} (validation); "
                "lower lr or raise damping"
            )
        if isinstance(self.optimizer, FishLeg) and not bool(self.optimizer.is_finite()):
            raise NonFiniteLoss(f"epoch {self.epoch + 1}: FishLeg's λ became non-finite; lower aux_lr or raise damping")
        if isinstance(self.optimizer, FishLeg):
            metrics["aux_loss"] = float(self.optimizer.last_aux_loss)
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


def save_checkpoint(trainer: Trainer, path: Path) -> None:
    """Write atomically, so a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(trainer.state_dict(), tmp)
    tmp.replace(path)


def load_checkpoint(trainer: Trainer, path: Path) -> None:
    """Restore a `save_checkpoint` file into `trainer` (weights_only: no code is loaded)."""
    trainer.load_state_dict(torch.load(path, map_location=trainer.device, weights_only=True))


@dataclass
class TrainResult:
    """Where a `train_to_folder` run wrote, its last epoch's metrics, epochs run and test metrics."""

    output: Path
    metrics: dict[str, float]
    epochs: int
    test: dict[str, float]


def train_to_folder(
    config: RunConfig,
    output: Path,
    *,
    source: str = "config",
    resume: bool = False,
    mlflow_uri: str | None = None,
    experiment: str = "fishleg-tune",
    echo: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> TrainResult:
    """`fishleg-tune train`: per-epoch validation metrics (metrics.jsonl) and a checkpoint each
    epoch in `output`, then the test metrics once at the end (test_metrics.json); `resume`
    continues from the checkpoint there. A non-finite loss raises NonFiniteLoss saying which
    checkpoint, if any, is kept."""
    trainer = Trainer(config, source=source)  # bad data or device fail here, before anything is written
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot use it as the output folder ({exc.strerror}).") from None
    save_config(config, output / "config.yaml")
    ckpt = output / "checkpoint.pt"
    if resume and ckpt.exists():
        load_checkpoint(trainer, ckpt)
        echo(f"resumed from {ckpt} at epoch {trainer.epoch}")
    metrics_file = output / "metrics.jsonl"
    metrics_file.write_text("".join(json.dumps(m) + "\n" for m in trainer.history))
    total = config.training.epochs
    bar = None if progress is None else progress.add_task("epochs", total=total, completed=trainer.epoch)
    with maybe_run(mlflow_uri, experiment, output.name) as run:
        if run is not None:
            tracker, run_id = run
            tracker.log_params(run_id, flatten(config.to_dict()))
            for m in trainer.history:
                tracker.log_metrics(run_id, m, step=int(m["epoch"]))
        while trainer.epoch < total:
            try:
                metrics = trainer.run_epoch()
            except NonFiniteLoss as exc:
                kept = (
                    f"the checkpoint of epoch {trainer.epoch} is kept in {ckpt}"
                    if ckpt.exists()
                    else "no epoch completed, so there is no checkpoint"
                )
                raise NonFiniteLoss(f"{exc}; {kept}") from None
            save_checkpoint(trainer, ckpt)
            with metrics_file.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            if run is not None:
                tracker.log_metrics(run_id, metrics, step=trainer.epoch)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "epoch_time_s"))
            echo(f"epoch {trainer.epoch}/{total}  {shown}  ({metrics['epoch_time_s']:.1f}s)")
            if bar is not None:
                progress.update(bar, completed=trainer.epoch, description=f"val_loss {metrics['val_loss']:.4g}")
        test = trainer.test()
        (output / "test_metrics.json").write_text(json.dumps({"epoch": trainer.epoch, **test}))
        if run is not None:
            tracker.log_metrics(run_id, test, step=trainer.epoch)
    final = trainer.history[-1] if trainer.history else {}
    return TrainResult(output, final, trainer.epoch, test)
