"""FishLeg vs Adam step time, side by side in one process; prints one JSON line at the end.

Mean time per step over a window that contains whole aux periods (aux steps included),
for the paper's MNIST autoencoder (batch 100), a CIFAR ResNet-20 (batch 128) and the
character-level transformer of examples/charlm (its sweep.yaml's size, batch 32, against
AdamW), plus the efficiency of the Kronecker Q·g product against a plain torch.mm on the
same shapes.

    python benchmarks/step_time.py [--steps 30] [--rounds 3] [--device cpu] [--skip-resnet] [--skip-charlm]
        [--contiguous-rows]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fishleg import BernoulliLikelihood, CategoricalLikelihood, FishLeg
from fishleg.blocks import Block
from fishleg.likelihoods import Likelihood
from tuning.workloads.models import mnist_autoencoder, resnet_cifar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ and examples/ as packages
from benchmarks.measure import contiguous_rows, flop_counter, report, seconds_per_call, sync  # noqa: E402
from examples.charlm.model import CharTransformer  # noqa: E402


def mean_step_ms(
    model: nn.Module, opt: torch.optim.Optimizer, lik: Likelihood, x: torch.Tensor, y: torch.Tensor, steps: int
) -> float:
    def one() -> None:
        opt.zero_grad(set_to_none=False)
        lik.nll(model(x), y).backward()
        opt.step()

    for _ in range(3):
        one()
    sync(x.device)
    start = time.perf_counter()
    for _ in range(steps):
        one()
    sync(x.device)
    return 1e3 * (time.perf_counter() - start) / steps


def compare(
    make_model: Callable[[], nn.Module],
    lik: Likelihood,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    aux_every: int,
    rounds: int,
    flop_model: tuple[float, Callable[[], float]] | None = None,
    baseline: type[torch.optim.Optimizer] = torch.optim.Adam,
    options: dict[str, object] | None = None,
) -> dict[str, float]:
    """Adam (or `baseline`) and FishLeg timed in alternating rounds on the same model; the medians of the
    rounds' means, so a burst of load on the machine moves neither side alone.

    flop_model: (FLOPs per FishLeg step beyond Adam's, a meter of torch.mm's FLOP/s). The
    meter runs in every round too, so the time the model predicts is the machine's at that
    moment; reported as the median over rounds of (FishLeg − Adam) ÷ predicted."""
    torch.manual_seed(0)
    model = make_model().to(x.device)
    adam = baseline(model.parameters(), lr=1e-4)
    fish = FishLeg(
        model,
        lik,
        aux_data=x,
        aux_batch_size=x.shape[0],
        update_aux_every=aux_every,
        q_structure="kron",
        lr=1e-4,
        aux_lr=1e-5,
        **(options or {}),
    )
    adam_ms, fish_ms, over_model = [], [], []
    peak_mb = {"adam": 0.0, "fishleg": 0.0}
    for _ in range(rounds):
        for name, opt, times in (("adam", adam, adam_ms), ("fishleg", fish, fish_ms)):
            if x.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(x.device)
            times.append(mean_step_ms(model, opt, lik, x, y, steps))
            if x.device.type == "cuda":
                peak_mb[name] = max(peak_mb[name], torch.cuda.max_memory_allocated(x.device) / 2**20)
        if flop_model is not None:
            flops, mm_rate = flop_model
            over_model.append((fish_ms[-1] - adam_ms[-1]) / (1e3 * flops / mm_rate()))
    adam_med, fish_med = statistics.median(adam_ms), statistics.median(fish_ms)
    result = {"adam_ms": adam_med, "fishleg_ms": fish_med, "ratio": fish_med / adam_med}
    if x.device.type == "cuda":  # both optimizers' states stay allocated: FishLeg's peak includes Adam's
        result.update({"adam_peak_mb": peak_mb["adam"], "fishleg_peak_mb": peak_mb["fishleg"]})
    if over_model:
        result["overhead_over_flop_model"] = statistics.median(over_model)
    return result


def kron_flops(model: nn.Module, lik: Likelihood, inputs: torch.Tensor) -> tuple[int, int]:
    """(FLOPs of Q·g, FLOPs of one aux step on `inputs`) for kron on `model`, counted by
    torch's FlopCounterMode over the optimizer's own calls when u is the gradient: Q·g, then
    the aux step (the Fisher-vector product and the preconditioned λ gradient, which reuses
    half of Q·g) and the Gram refresh. Together, every product FishLeg adds to an Adam step."""
    opt = FishLeg(model, lik, aux_data="manual", q_structure="kron")
    with torch.no_grad():
        with flop_counter() as qg:
            for b in opt.curvature.blocks:
                b.structure.apply_cached(b.grad, out=b.qg)
        with flop_counter() as aux:
            opt.curvature.aux_gradients(
                opt.curvature.blocks,
                inputs,
                [b.grad for b in opt.curvature.blocks],
                [b.qg for b in opt.curvature.blocks],
            )
            for b in opt.curvature.blocks:
                b.structure.refresh()
    return qg.get_total_flops(), aux.get_total_flops()


def _kron_blocks(model: nn.Module) -> list[Block]:
    opt = FishLeg(model, BernoulliLikelihood(), aux_data="manual", q_structure="kron")
    return [b for b in opt.curvature.blocks if len(b.structure.shape) == 2]


def _qg_flops(blocks: list[Block]) -> int:
    return sum(2 * m * n * (m + n) for m, n in (b.structure.shape for b in blocks))


def mm_rate_meter(blocks: list[Block], device: torch.device, reps: int = 10) -> Callable[[], float]:
    """A function that times plain torch.mm products A·U·C on the kron blocks' shapes (the
    physical limit of Q·g) and returns their FLOP/s."""
    flops = _qg_flops(blocks)
    mats = [
        (torch.randn(m, m, device=device), torch.randn(m, n, device=device), torch.randn(n, n, device=device))
        for m, n in (b.structure.shape for b in blocks)
    ]

    def mm() -> None:
        for a, u, c in mats:
            torch.mm(torch.mm(a, u), c)

    return lambda: flops / seconds_per_call(mm, device, reps)


def qg_efficiency(model: nn.Module, device: torch.device, rounds: int, reps: int = 10) -> float:
    """Achieved FLOP/s of the cached kron Q·g ÷ torch.mm's on the same shapes, timed in
    alternating rounds (median)."""
    blocks = _kron_blocks(model)
    mm_rate = mm_rate_meter(blocks, device, reps)

    def qg() -> None:
        for b in blocks:
            b.structure.apply_cached(b.grad, out=b.qg)

    return statistics.median(_qg_flops(blocks) / seconds_per_call(qg, device, reps) / mm_rate() for _ in range(rounds))


def measure(args: argparse.Namespace) -> dict[str, object]:
    """Every comparison the command line asks for, as the summary's entries."""
    device = torch.device(args.device)
    result: dict[str, object] = {"benchmark": "step_time", "device": str(device), "threads": torch.get_num_threads()}
    result["rows"] = "contiguous" if args.contiguous_rows else "aligned"

    x = torch.rand(100, 784, device=device)
    result["autoencoder_qg_efficiency"] = qg_efficiency(mnist_autoencoder().to(device), device, args.rounds)
    qg_flops, aux_flops = kron_flops(mnist_autoencoder().to(device), BernoulliLikelihood(), x)
    mm_rate = mm_rate_meter(_kron_blocks(mnist_autoencoder().to(device)), device)
    for k in (10, 1):
        flop_model = (qg_flops + aux_flops / k, mm_rate)
        r = compare(mnist_autoencoder, BernoulliLikelihood(), x, x, args.steps, k, args.rounds, flop_model)
        result[f"autoencoder_kron_aux{k}"] = r
        print(f"autoencoder kron aux every {k}: {r}", flush=True)
    if not args.skip_resnet:
        xi = torch.randn(128, 3, 32, 32, device=device)
        yi = torch.randint(10, (128,), device=device)
        for k in (10, 1):
            r = compare(lambda: resnet_cifar(20), CategoricalLikelihood(), xi, yi, args.steps, k, args.rounds)
            result[f"resnet20_kron_aux{k}"] = r
            print(f"resnet20 kron aux every {k}: {r}", flush=True)
    if not args.skip_charlm:  # examples/charlm/sweep.yaml's model; the ratio is FishLeg ÷ AdamW here
        tokens = torch.randint(128, (32, 64), device=device)
        # kron with an aux step every 10 and every step, and the drop-in for AdamW: Adam's step
        # length grafted onto FishLeg's direction
        for key, k, options in (
            ("kron_aux10", 10, {}),
            ("kron_aux1", 1, {}),
            ("graft_adam_aux10", 10, {"graft": "adam"}),
        ):
            r = compare(
                lambda: CharTransformer(128, context=64, d_model=64, n_heads=4, n_layers=2),
                CategoricalLikelihood(),
                tokens,
                tokens.flatten(),
                args.steps,
                k,
                args.rounds,
                baseline=torch.optim.AdamW,
                options=options,
            )
            result[f"charlm_{key}_vs_adamw"] = r
            print(f"charlm {key} (vs AdamW): {r}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round (a multiple of 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating Adam/FishLeg rounds (medians reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-charlm", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the summary JSON to this file")
    parser.add_argument("--contiguous-rows", action="store_true", help="FishLeg's blocks on contiguous rows (ablation)")
    args = parser.parse_args()
    with contiguous_rows() if args.contiguous_rows else contextlib.nullcontext():
        result = measure(args)
    report(result, args.out)


if __name__ == "__main__":
    main()
