"""A tuned FishLeg config in a PyTorch Lightning module: the digits classifier trained by
`lightning.Trainer`, one process or DDP, stopped and resumed from Lightning's checkpoint.

    python examples/lightning/train.py --config fishleg-runs/quickstart/best_config.yaml
    python examples/lightning/train.py --config ... --devices 2 --strategy ddp

FishLeg needs three things a LightningModule gives it: the module itself (Q is built per
layer and the Fisher products run `forward`), aux batches (`fishleg.aux_from_loader` on the
module's own train DataLoader) and, for `adaptive_damping`, a closure (Lightning passes one to
`optimizer.step`). Its state travels in Lightning's checkpoint as any optimizer's does."""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

import fishleg
from examples.digits import digits

__all__ = ["DigitsModule", "main"]


class DigitsModule(L.LightningModule):
    """An MLP trained with the FishLeg hyperparameters in `config` (a best_config.yaml)."""

    def __init__(self, config: str, hidden: int = 64, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
        self.likelihood = fishleg.CategoricalLikelihood()
        self.data = digits()

    def forward(self, x: Tensor) -> Tensor:
        """Pixels (B, 64) → logits (B, 10); FishLeg's Fisher products run this too."""
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The batch's mean NLL (Lightning hands FishLeg a closure that runs this and backward)."""
        x, y = batch
        loss = self.likelihood.nll(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def train_dataloader(self) -> DataLoader:
        """Batches in an order that is a function of (seed, epoch) (Lightning calls set_epoch),
        so a run resumed from a checkpoint sees the batches the uninterrupted run would have;
        the sampler also splits the data between DDP ranks."""
        sampler = DistributedSampler(
            self.data, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, seed=self.hparams.seed
        )
        return DataLoader(self.data, batch_size=self.hparams.batch_size, sampler=sampler, drop_last=True)

    def configure_optimizers(self) -> fishleg.FishLeg:
        """FishLeg from the tuned config, its aux batches drawn from this module's train data."""
        return fishleg.FishLeg.from_config(
            self,
            fishleg.load_config(self.hparams.config),
            likelihood=self.likelihood,
            aux_data=fishleg.aux_from_loader(self.train_dataloader()),
            seed=self.hparams.seed,
        )


def main(argv: list[str] | None = None) -> None:
    """Fit (or resume) the module as the command line says."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a best_config.yaml (or any FishLeg config file)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="'auto', or 'ddp' with --devices 2")
    parser.add_argument("--root", type=Path, default=Path("lightning-runs"), help="checkpoints and logs")
    parser.add_argument("--ckpt-path", default=None, help="a Lightning checkpoint to resume from")
    parser.add_argument("--save", type=Path, default=None, help="write the trained parameters here (rank 0)")
    args = parser.parse_args(argv)
    L.seed_everything(0, workers=True)
    module = DigitsModule(args.config)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        default_root_dir=args.root,
        deterministic=True,
        enable_model_summary=False,
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(save_top_k=-1)],  # every epoch's, to resume from any
    )
    trainer.fit(module, ckpt_path=args.ckpt_path)
    if args.save is not None:
        torch.save(module.state_dict(), args.save.with_suffix(f".rank{trainer.global_rank}.pt"))
    if trainer.is_global_zero:
        print(f"trained {trainer.current_epoch} epochs; checkpoints in {trainer.checkpoint_callback.dirpath}")


if __name__ == "__main__":
    main()
