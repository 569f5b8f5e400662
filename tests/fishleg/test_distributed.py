"""FishLeg under DistributedDataParallel on 2 CPU ranks (gloo on loopback, spawned and joined
here): every rank holds the same parameters and λ after every step, whatever the Q structure
and the options that touch λ or the step; the averaged aux step is the aux step on the union
of the ranks' aux batches; `aux_work: split` trains its recorded numbers; and a data-parallel
checkpoint loads on one process."""

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fishleg import FishLeg
from fishleg.distributed import SplitBlocks, assign_owners
from tests.fishleg.trajectories import tolerance

WORLD = 2
STEPS = 20
CASES = {
    "diag": {"q_structure": "diag"},
    "kron": {"q_structure": "kron"},
    "kron_diag": {"q_structure": "kron_diag"},
    "kron_sum": {"q_structure": "kron_sum"},
    "warm_dense": {"warmup_aux_steps": 2, "dense_aux_steps": 4},
    "adaptive_damping": {"adaptive_damping": True, "damping": 0.1},
    "quadratic_step": {"step_rule": "quadratic", "lr": 1.0, "damping": 0.1},
    "kfac_start_gaussian_probes": {"q_init": "kfac", "u_sampling": "gaussian"},
    "split_kron": {"aux_work": "split"},
    "split_kron_sum_gaussian_probes": {"aux_work": "split", "q_structure": "kron_sum", "u_sampling": "gaussian"},
    "split_warm_dense_grafted": {"aux_work": "split", "warmup_aux_steps": 2, "dense_aux_steps": 4, "graft": "adam"},
}


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def shard(rank: int, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def probes(net: nn.Module) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.randn(p.shape, generator=g) for p in net.parameters()]


def lambdas(opt: FishLeg) -> list[torch.Tensor]:
    return [lam.detach().clone() for b in opt.curvature.blocks for lam in b.structure.params]


def worker(rank: int, port: int, out: Path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        x, y = shard(rank)
        results = {}
        for name, options in CASES.items():
            net = model()
            ddp = nn.parallel.DistributedDataParallel(net)
            opt = FishLeg(ddp, "categorical", x, update_aux_every=2, aux_batch_size=8, **options)

            def closure(ddp=ddp, opt=opt) -> torch.Tensor:
                opt.zero_grad()
                loss = nn.functional.cross_entropy(ddp(x), y)
                loss.backward()
                return loss

            for _ in range(STEPS):
                opt.step(closure)
            params = [p.detach().clone() for p in net.parameters()]
            results[name] = {"params": params, "lambdas": lambdas(opt), "state": opt.state_dict()}
        # One aux step with given probes on this rank's own inputs (averaged across ranks).
        for name, work in (("one_aux_step", "all"), ("one_split_aux_step", "split")):
            net = model()
            opt = FishLeg(net, "categorical", aux_data="manual", seed=0, aux_work=work)
            opt.update_aux(x, probes(net))
            results[name] = {"lambdas": lambdas(opt), "owned": isinstance(opt.curvature.work, SplitBlocks)}
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_ranks(out: Path) -> list[dict]:
    """Every case on WORLD spawned ranks; each rank's results."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(port, out), nprocs=WORLD, join=True, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return run_ranks(tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_replicas_stay_identical(ranks, case):
    """Bitwise: every rank applies the same all-reduced values in the same order."""
    a, b = ranks[0][case], ranks[1][case]
    assert all(torch.equal(p, q) for p, q in zip(a["params"], b["params"], strict=True))
    assert all(torch.equal(p, q) for p, q in zip(a["lambdas"], b["lambdas"], strict=True))
    assert all(torch.isfinite(p).all() for p in a["params"])
    start = model()
    assert any(not torch.equal(p, q) for p, q in zip(a["params"], start.parameters(), strict=True))  # it trained


@pytest.mark.parametrize("case", ["one_aux_step", "one_split_aux_step"])
def test_the_averaged_aux_step_is_the_aux_step_on_the_union_of_batches(ranks, case):
    """With equal local batches, the mean over ranks of the Fisher-vector products is the one on
    their union, so one process with both ranks' inputs takes the same λ step (up to the order
    of float sums), whether the ranks average the λ gradients or split the blocks between them."""
    net = model()
    opt = FishLeg(net, "categorical", aux_data="manual", seed=0)
    opt.update_aux(torch.cat([shard(r)[0] for r in range(WORLD)]), probes(net))
    before = lambdas(FishLeg(model(), "categorical", aux_data="manual", seed=0))
    assert ranks[0][case]["owned"] == (case == "one_split_aux_step")
    for got, want, start in zip(ranks[0][case]["lambdas"], lambdas(opt), before, strict=True):
        assert not torch.equal(want, start)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


SPLIT = [case for case in sorted(CASES) if case.startswith("split_")]
SPLIT_FIXTURE = Path(__file__).with_name("data") / "split_trajectories.pt"


@pytest.mark.parametrize("case", SPLIT)
def test_split_work_replays_its_recorded_trajectory(ranks, case):
    """`aux_work: split` trains the recorded numbers (`python -m tests.fishleg.test_distributed`
    records them), so reshaping how the aux work is assigned cannot change what it does
    (`tolerance` as for the single-process recordings)."""
    expected = torch.load(SPLIT_FIXTURE, weights_only=True)[case]
    for key in ("params", "lambdas"):
        for got, want in zip(ranks[0][case][key], expected[key], strict=True):
            torch.testing.assert_close(got, want, **tolerance(), msg=f"{case}: {key}")


def test_split_work_is_balanced_by_cost():
    """Costliest first, each to the least-loaded rank: the same answer on every rank."""
    assert assign_owners([8.0, 1.0, 5.0, 4.0], 2) == [0, 0, 1, 1]
    assert assign_owners([3.0, 3.0, 3.0], 3) == [0, 1, 2]


def test_a_data_parallel_checkpoint_loads_on_one_process(ranks):
    saved = ranks[0]["kron"]
    net = model()
    x, _ = shard(0)
    opt = FishLeg(net, "categorical", x, update_aux_every=2, aux_batch_size=8, q_structure="kron")
    assert opt.state_dict().keys() == saved["state"].keys()
    opt.load_state_dict(saved["state"])
    assert all(torch.equal(p, q) for p, q in zip(lambdas(opt), saved["lambdas"], strict=True))
    assert opt.step_count == STEPS


if __name__ == "__main__":  # re-record SPLIT_FIXTURE: only for a change meant to alter the numbers
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        first = run_ranks(Path(tmp))[0]
    torch.save({case: {k: first[case][k] for k in ("params", "lambdas")} for case in SPLIT}, SPLIT_FIXTURE)
