"""FishLeg's step time at another commit against this checkout's, in one process, alternating.

The other commit's `fishleg` package is extracted with `git archive` and imported under its own
name, so a redesign is timed against what it replaced on the same models, the same data and the
same moment of the machine: each round times both (their order swapped every round), and the
ratio new ÷ old is reported as the median over rounds with its range. Prints one line per case
and, last, one JSON line.

    python benchmarks/step_ab.py [REV] [--steps 30] [--rounds 7]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ and examples/ as packages
import fishleg  # noqa: E402
from benchmarks.measure import report  # noqa: E402
from benchmarks.step_time import mean_step_ms  # noqa: E402
from examples.charlm.model import CharTransformer  # noqa: E402
from tuning.workloads.models import mnist_autoencoder  # noqa: E402


def package_at(rev: str, into: Path) -> ModuleType:
    """`fishleg` as it was at `rev`, importable as `fishleg_<rev>` (its own imports renamed)."""
    name = "fishleg_" + re.sub(r"\W", "_", rev)
    archive = subprocess.run(["git", "archive", rev, "fishleg"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "fishleg").rename(into / name)
    for path in (into / name).rglob("*.py"):
        path.write_text(re.sub(r"\bfishleg(?=[. ])", name, path.read_text()))
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def case(
    make_model: Callable[[], nn.Module], likelihood: str, x: torch.Tensor, y: torch.Tensor, options: dict[str, object]
) -> Callable[[ModuleType, int], float]:
    """A timed run of `make_model`'s FishLeg under a given package: every package starts from the
    same weights."""
    torch.manual_seed(0)
    model = make_model()
    optimizers: dict[str, tuple[nn.Module, torch.optim.Optimizer, nn.Module]] = {}

    def run(package: ModuleType, steps: int) -> float:
        if package.__name__ not in optimizers:
            own = copy.deepcopy(model)
            lik = package.CategoricalLikelihood() if likelihood == "categorical" else package.BernoulliLikelihood()
            optimizers[package.__name__] = (own, package.FishLeg(own, lik, aux_data=x, **options), lik)
        own, opt, lik = optimizers[package.__name__]
        return mean_step_ms(own, opt, lik, x, y, steps)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", nargs="?", default="1a6d23a", help="the commit to time against (default: 1a6d23a)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round (a multiple of 10)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (medians reported)")
    parser.add_argument("--out", type=Path, help="also write the summary JSON to this file")
    args = parser.parse_args()
    x = torch.rand(100, 784)
    tokens = torch.randint(128, (32, 64))
    base = {"aux_batch_size": 32, "lr": 1e-4, "aux_lr": 1e-5, "q_structure": "kron"}
    cases = {
        "autoencoder_kron_aux10": case(mnist_autoencoder, "bernoulli", x, x, {**base, "update_aux_every": 10}),
        "autoencoder_kron_aux1": case(mnist_autoencoder, "bernoulli", x, x, {**base, "update_aux_every": 1}),
        "charlm_graft_partner_aux10": case(
            lambda: CharTransformer(128, context=64, d_model=64, n_heads=4, n_layers=2),
            "categorical",
            tokens,
            tokens.flatten(),
            {**base, "update_aux_every": 10, "graft": "adam", "partner": "adamw", "weight_decay": 0.01},
        ),
    }
    result: dict[str, object] = {"benchmark": "step_ab", "old": args.rev, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        old = package_at(args.rev, Path(tmp))
        for key, run in cases.items():
            times: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(args.rounds):
                order = (("old", old), ("new", fishleg)) if r % 2 == 0 else (("new", fishleg), ("old", old))
                for side, package in order:
                    times[side].append(run(package, args.steps))
            ratios = [n / o for n, o in zip(times["new"], times["old"], strict=True)]
            entry = {
                "old_ms": statistics.median(times["old"]),
                "new_ms": statistics.median(times["new"]),
                "ratio": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
            }
            result[key] = entry
            print(f"{key}: {entry}", flush=True)
    report(result, args.out)


if __name__ == "__main__":
    main()
