"""FishLeg vs AdamW at equal epochs, from published defaults (no tuning), over seeds.

FishLeg uses the reference repository's MNIST-autoencoder settings (lr 0.02, aux_lr 2e-3,
damping 0.3, update_aux_every 10, batch 100); AdamW its usual lr 1e-3, weight decay 1e-2.
Validation (a fixed share of the training data) is evaluated every epoch; the test split
once, after the last epoch. Prints a table and, last, one JSON line: per workload and
optimizer the mean ± std of the final validation and test losses, and the epochs each needs
to reach AdamW's final mean validation loss.

    python benchmarks/quality.py [--seeds 3] [--epochs 20] [--workloads mnist5k digits]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tuning.config import RunConfig
from tuning.trainer import Trainer

WORKLOADS = {
    "mnist5k": {"name": "mnist_autoencoder", "subset": "mnist5k"},
    "mnist_full": {"name": "mnist_autoencoder", "subset": "full", "data_dir": "data/mnist", "download": False},
    "digits": {"name": "digits_autoencoder"},
}
OPTIMIZERS = {
    "fishleg": {
        "name": "fishleg",
        "lr": 0.02,
        "aux_lr": 2e-3,
        "damping": 0.3,
        "update_aux_every": 10,
        "aux_batch_size": 100,
        "beta": 0.9,
        "weight_decay": 1e-5,
        "q_structure": "kron",
    },
    "adamw": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-2},
}


def run(workload: dict, optimizer: dict, epochs: int, seed: int) -> tuple[list[float], float, float]:
    """(validation loss per epoch, test loss after the last epoch, training seconds)."""
    config = RunConfig.model_validate(
        {
            "workload": workload,
            "optimizer": optimizer,
            "training": {"epochs": epochs, "batch_size": 100, "seed": seed, "device": "auto"},
        }
    )
    trainer = Trainer(config)
    start = time.perf_counter()
    losses = [trainer.run_epoch()["val_loss"] for _ in range(epochs)]
    took = time.perf_counter() - start
    return losses, trainer.test()["test_loss"], took


def epochs_to(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workloads", nargs="+", default=["mnist5k", "digits"], choices=sorted(WORKLOADS))
    args = parser.parse_args()
    if "mnist_full" not in args.workloads and (Path("data/mnist") / "train-images-idx3-ubyte.gz").exists():
        args.workloads.append("mnist_full")
    summary: dict[str, object] = {"benchmark": "quality", "epochs": args.epochs, "seeds": args.seeds}
    for wname in args.workloads:
        curves = {o: [] for o in OPTIMIZERS}
        tests = {o: [] for o in OPTIMIZERS}
        seconds = {o: 0.0 for o in OPTIMIZERS}
        for opt in OPTIMIZERS:
            for seed in range(args.seeds):
                curve, test, took = run(WORKLOADS[wname], OPTIMIZERS[opt], args.epochs, seed)
                curves[opt].append(curve)
                tests[opt].append(test)
                seconds[opt] += took
        target = statistics.mean(c[-1] for c in curves["adamw"])
        result = {}
        for opt, runs in curves.items():
            finals = [c[-1] for c in runs]
            mean_curve = [statistics.mean(vals) for vals in zip(*runs)]
            result[opt] = {
                "val_loss_mean": statistics.mean(finals),
                "val_loss_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                "test_loss_mean": statistics.mean(tests[opt]),
                "test_loss_std": statistics.stdev(tests[opt]) if len(tests[opt]) > 1 else 0.0,
                "epochs_to_adamw_final_val": epochs_to(mean_curve, target),
                "seconds_per_epoch": seconds[opt] / (args.seeds * args.epochs),
            }
            r = result[opt]
            print(
                f"{wname:<10} {opt:<8} val loss {r['val_loss_mean']:.3f} ± {r['val_loss_std']:.3f}   "
                f"test loss {r['test_loss_mean']:.3f} ± {r['test_loss_std']:.3f}   "
                f"epochs to AdamW's final val {r['epochs_to_adamw_final_val']}   "
                f"{r['seconds_per_epoch']:.2f} s/epoch",
                flush=True,
            )
        summary[wname] = result
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
