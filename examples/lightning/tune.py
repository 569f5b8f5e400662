"""Tune a LightningModule and its LightningDataModule as they are, through `fishleg-tune`.

    fishleg-tune search examples/lightning/sweep.yaml
    fishleg-tune train fishleg-runs/lightning/best_config.yaml --output runs/lightning

The module and the data module are ordinary Lightning code; the sweep's training function
`fit` builds them from the trial's config and hands `tuning.run.lightning.ReportCallback` to the
Trainer, which reports what the module logs (`train_loss`, `val_loss`, `val_accuracy`) each
epoch with a Lightning checkpoint (ASHA, retries and `fishleg-tune resume` restore from it).
The optimizer is whatever the config says (FishLeg, or AdamW for `sweep_adamw.yaml`); FishLeg's
aux batches come from the data module (`fishleg.aux_from_loader(self.trainer.datamodule)`)."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

import fishleg
from examples.digits import digits
from tuning.run.config import RunConfig
from tuning.run.fit import FitContext
from tuning.run.lightning import ReportCallback

__all__ = ["DigitsData", "DigitsClassifier", "fit"]


class DigitsData(L.LightningDataModule):
    """scikit-learn's digits, split once (fixed generator) into train / validation / test;
    the train order is a function of (seed, epoch), so a resumed run sees the same batches."""

    def __init__(self, batch_size: int, seed: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed

    def setup(self, stage: str) -> None:
        """The three splits (1257 / 270 / 270 images)."""
        data = digits()
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
        self.train, self.val, self.test = (Subset(data, order[a:b]) for a, b in ((0, 1257), (1257, 1527), (1527, None)))

    def train_dataloader(self) -> DataLoader:
        """Shuffled per epoch (Lightning calls the sampler's set_epoch)."""
        sampler = DistributedSampler(self.train, num_replicas=1, rank=0, seed=self.seed)
        return DataLoader(self.train, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        """The validation split, in order."""
        return DataLoader(self.val, batch_size=256)


class DigitsClassifier(L.LightningModule):
    """An MLP on 8x8 digits, trained with the optimizer `config` names."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config
        hidden = int(config.trainable.options.get("hidden", 32))
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
        self.likelihood = fishleg.CategoricalLikelihood()

    def forward(self, x: Tensor) -> Tensor:
        """Pixels (B, 64) → logits (B, 10); FishLeg's Fisher products run this too."""
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The batch's mean NLL, logged as the epoch's mean `train_loss`."""
        x, y = batch
        loss = self.likelihood.nll(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """`val_loss` and `val_accuracy`, what the sweep chooses on."""
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.likelihood.nll(logits, y), on_epoch=True)
        self.log("val_accuracy", (logits.argmax(1) == y).float().mean(), on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The config's optimizer; FishLeg draws its aux batches from the data module's train set."""
        return self.config.build_optimizer(
            self, likelihood=self.likelihood, aux_data=fishleg.aux_from_loader(self.trainer.datamodule)
        )


def fit(config: RunConfig, context: FitContext) -> None:
    """One trial: the module trained by a Lightning Trainer, reported each epoch."""
    report = ReportCallback(context)
    trainer = L.Trainer(
        accelerator="cpu" if context.device.type == "cpu" else "auto",
        devices=1,
        max_epochs=config.training.epochs,
        callbacks=[report],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    torch.manual_seed(config.training.seed)  # the initial weights
    module = DigitsClassifier(config)
    data = DigitsData(config.training.batch_size, config.training.seed)
    trainer.fit(module, datamodule=data, ckpt_path=report.resume_from, weights_only=True)
