"""Adam and FishLeg under DistributedDataParallel, 1 and 2 ranks, side by side in one run;
prints one JSON line at the end.

Each rank is a spawned process with one thread, on gloo over loopback, training the paper's
MNIST autoencoder on its own batch (so 2 ranks see twice the data per step) with its own aux
batch. Per world size: ms per step of Adam+DDP and of FishLeg+DDP (kron, an aux step every
`--aux-every` steps) with `aux_work="all"` (every rank computes every block's λ gradient, then
they are averaged) and `aux_work="split"` (residuals averaged, each rank computes its share
of the blocks' λ gradients), and each one's aux steps alone (`update_aux`, communication
included), as the share of its step time they take. Medians over `--rounds` alternating
rounds.

    python benchmarks/ddp_step_time.py [--steps 20] [--rounds 3] [--aux-every 10]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fishleg import BernoulliLikelihood, FishLeg  # noqa: E402
from tuning.workloads.models import mnist_autoencoder  # noqa: E402


def _ms_per_call(fn, calls: int) -> float:
    fn()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    dist.barrier()
    return 1e3 * (time.perf_counter() - start) / calls


def worker(rank: int, world: int, port: int, args: argparse.Namespace, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = nn.parallel.DistributedDataParallel(mnist_autoencoder())
        x = torch.rand(100, 784, generator=torch.Generator().manual_seed(rank))
        lik = BernoulliLikelihood()
        adam = torch.optim.Adam(net.parameters(), lr=1e-4)
        fish, split = (
            FishLeg(net, lik, x, aux_batch_size=100, update_aux_every=args.aux_every, lr=1e-4, seed=0, aux_work=work)
            for work in ("all", "split")
        )

        def step(opt: torch.optim.Optimizer) -> None:
            opt.zero_grad(set_to_none=False)
            lik.nll(net(x), x).backward()
            opt.step()

        rows = {"adam_ms": [], "fishleg_ms": [], "aux_ms": [], "fishleg_split_ms": [], "aux_split_ms": []}
        aux_calls = max(2, args.steps // args.aux_every)
        for _ in range(args.rounds):
            rows["adam_ms"].append(_ms_per_call(lambda: step(adam), args.steps))
            rows["fishleg_ms"].append(_ms_per_call(lambda: step(fish), args.steps))
            rows["aux_ms"].append(_ms_per_call(lambda: fish.update_aux(x), aux_calls))
            rows["fishleg_split_ms"].append(_ms_per_call(lambda: step(split), args.steps))
            rows["aux_split_ms"].append(_ms_per_call(lambda: split.update_aux(x), aux_calls))
        if rank == 0:
            result = {k: statistics.median(v) for k, v in rows.items()}
            result["aux_share"] = result["aux_ms"] / args.aux_every / result["fishleg_ms"]
            result["aux_share_split"] = result["aux_split_ms"] / args.aux_every / result["fishleg_split_ms"]
            (out / f"world{world}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--aux-every", type=int, default=10)
    args = parser.parse_args()
    result: dict[str, object] = {"benchmark": "ddp_step_time", "backend": "gloo", "threads_per_rank": 1}
    with tempfile.TemporaryDirectory() as folder:
        for world in (1, 2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.start_processes(worker, args=(world, port, args, Path(folder)), nprocs=world, start_method="spawn")
            row = json.loads((Path(folder) / f"world{world}.json").read_text())
            row["fishleg_over_adam"] = row["fishleg_ms"] / row["adam_ms"]
            result[f"ranks{world}"] = row
            print(f"{world} rank(s): {row}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
