"""The training function a user writes: its own model, its own DataLoader, its own loop,
reporting each epoch through the context (`tuning.run.fit`). It runs unchanged in a sweep
(`fishleg-tune search examples/charlm/sweep.yaml`), under `fishleg-tune train` and in plain
Python; the optimizer is whatever the config names (FishLeg, or AdamW to compare)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from examples.charlm.data import VOCAB, CharWindows, load_text, split_text
from examples.charlm.model import CharTransformer
from fishleg.likelihoods import CategoricalLikelihood
from tuning.run.config import RunConfig
from tuning.run.fit import FitContext

__all__ = ["Options", "build", "evaluate", "fit"]


class Options(BaseModel):
    """`trainable:` options of this example (searchable as `trainable.<name>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_chars: int = Field(400_000, gt=1000, description="characters of standard-library source used")
    context: int = Field(64, gt=1)
    d_model: int = Field(64, gt=0)
    n_heads: int = Field(4, gt=0)
    n_layers: int = Field(2, gt=0)
    batches_per_epoch: int = Field(100, gt=0, description="an 'epoch' is this many training batches")
    eval_windows: int = Field(256, gt=0, description="validation windows evaluated each epoch")
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    test_fraction: float = Field(0.05, gt=0, lt=0.5)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")


def build(config: RunConfig, seed: int) -> tuple[Options, nn.Module, tuple[Dataset, Dataset, Dataset]]:
    """The options, the model (initialised from `seed`) and the (train, val, test) windows."""
    opts = Options.model_validate(config.trainable.options if config.trainable else {})
    parts = split_text(load_text(opts.num_chars), opts.val_fraction, opts.test_fraction)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CharTransformer(VOCAB, opts.context, opts.d_model, opts.n_heads, opts.n_layers)
    return opts, model, tuple(CharWindows(p, opts.context) for p in parts)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, windows: int, device: torch.device) -> float:
    """Mean next-character NLL (nats) over the first `windows` windows of `data`."""
    model.eval()
    loader = DataLoader(data, batch_size=64)
    total, count = torch.zeros((), device=device), 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        total += nn.functional.cross_entropy(model(x), y.flatten(), reduction="sum")
        count += y.numel()
        if count >= windows * y.shape[1]:
            break
    model.train()
    return float(total) / count


def fit(config: RunConfig, context: FitContext) -> None:
    """Train to `training.epochs`, reporting train and validation loss each epoch."""
    opts, model, (train, val, _test) = build(config, context.seed)
    device = context.device
    model.to(device)
    likelihood = CategoricalLikelihood().to(device)
    order = torch.Generator().manual_seed(context.seed)
    loader = DataLoader(
        train,
        batch_size=config.training.batch_size,
        shuffle=True,
        drop_last=True,
        generator=order,
        num_workers=opts.num_workers,
        pin_memory=device.type == "cuda",
    )
    # FishLeg's auxiliary batches come from the same windows (inputs only, with replacement).
    optimizer = config.build_optimizer(model, likelihood=likelihood, aux_data=train, seed=context.seed)
    if context.checkpoint is not None:
        model.load_state_dict(context.checkpoint["model"])
        optimizer.load_state_dict(context.checkpoint["optimizer"])
        order.set_state(context.checkpoint["order"])
    for _ in range(context.epoch, config.training.epochs):
        total = torch.zeros((), device=device)
        steps = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)

            def closure(x: Tensor = x, y: Tensor = y) -> Tensor:
                # a closure, so that every FishLeg option works (adaptive_damping calls it again)
                optimizer.zero_grad(set_to_none=True)
                loss = likelihood.nll(model(x), y.flatten())
                loss.backward()
                return loss

            loss = optimizer.step(closure)
            total += loss.detach()
            steps += 1
            if steps == opts.batches_per_epoch:
                break
        state: dict[str, Any] = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "order": order.get_state(),
        }
        metrics = {"train_loss": total / steps, "val_loss": evaluate(model, val, opts.eval_windows, device)}
        context.report(metrics, checkpoint=state)
