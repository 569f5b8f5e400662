"""A tuned FishLeg config in a data-parallel script of one's own, started by torchrun:

    torchrun --nproc_per_node 2 -m examples.torchrun.train --config best_config.yaml --checkpoints ddp-runs

Each process trains a DistributedDataParallel replica on its shard of scikit-learn's digits
(gloo on CPU, NCCL on GPUs). FishLeg runs with `aux_work: split`: each rank computes the λ
gradients of its share of the layers and one all-reduce gives every rank all of them, so the
replicas stay identical. Rank 0 writes a checkpoint each epoch; started again with the same
--checkpoints, the run continues from the latest and ends where an uninterrupted run would."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import fishleg
from examples.digits import digits

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """One rank's training: torchrun starts one process per rank."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a best_config.yaml (or any FishLeg config file)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--checkpoints", type=Path, required=True, help="epoch-N.pt per epoch; resumes from the last")
    parser.add_argument("--save", type=Path, default=None, help="write each rank's trained parameters here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if torch.cuda.is_available() else torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()

    torch.manual_seed(args.seed)  # the same initial weights on every rank
    net = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10)).to(device)
    model = DistributedDataParallel(net)
    data = digits()
    sampler = DistributedSampler(data, seed=args.seed)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    config = fishleg.load_config(args.config).model_copy(update={"aux_work": "split"})
    likelihood = fishleg.CategoricalLikelihood()
    optimizer = fishleg.FishLeg.from_config(
        model, config, likelihood=likelihood, aux_data=fishleg.aux_from_loader(loader), seed=args.seed
    )
    start = 0
    saved = sorted(args.checkpoints.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if saved:
        state = torch.load(saved[-1], map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]
    for epoch in range(start, args.epochs):
        sampler.set_epoch(epoch)
        total = torch.zeros((), device=device)
        for x, y in loader:
            optimizer.zero_grad()
            loss = likelihood.nll(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            total += loss.detach()
        if rank == 0:
            state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
            args.checkpoints.mkdir(parents=True, exist_ok=True)
            torch.save(state, args.checkpoints / f"epoch-{epoch + 1}.pt")
            print(f"epoch {epoch + 1}: train loss {float(total) / len(loader):.4f}", flush=True)
        dist.barrier()  # no rank reads the checkpoint (on a restart) before it is whole
    if args.save is not None:
        torch.save(net.state_dict(), args.save.with_suffix(f".rank{rank}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
