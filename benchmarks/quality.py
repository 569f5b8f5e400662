"""FishLeg (and its variants) vs AdamW at equal epochs, from published defaults (no tuning),
over seeds.

FishLeg uses the reference repository's MNIST-autoencoder settings (lr 0.02, aux_lr 2e-3,
damping 0.3, update_aux_every 10, batch 100); AdamW its usual lr 1e-3, weight decay 1e-2.
The variants add one option each to plain FishLeg: a warm-started Q (`warmup_aux_steps`),
a dense early aux schedule (`dense_aux_steps`), or both, Q started at K-FAC's estimate
(`q_init="kfac"`), Levenberg–Marquardt damping (`adaptive_damping`), a decaying aux_lr
(`aux_lr_start`), Q·g bounded by ‖g‖/γ (`bound_step`), the dense schedule with that bound, or
K-FAC's quadratic-model step (`step_rule: quadratic`, at lr 1: the model's minimiser), alone, with
adaptive damping, or with the warm start and the dense schedule at damping 0.03 (and adaptive
damping).
Nothing is chosen here, so the test split is evaluated at each of `--at` epochs (a
learning curve on test, not a selection); validation every epoch. Prints a table and, last,
one JSON line: per workload and variant the mean ± std over seeds of the validation and test
losses at those epochs, the epochs to reach AdamW's final mean validation loss, and seconds
per epoch (warm-up included).

    python benchmarks/quality.py [--seeds 3] [--epochs 20] [--at 5 10 20]
        [--workloads curves mnist5k digits digits_clf] [--variants fishleg fishleg_warm ... adamw]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from tuning.errors import NonFiniteLoss
from tuning.run.config import RunConfig
from tuning.training import Trainer

WORKLOADS = {
    "curves": {"name": "curves_autoencoder"},
    "mnist5k": {"name": "mnist_autoencoder", "subset": "mnist5k"},
    "mnist_full": {"name": "mnist_autoencoder", "subset": "full", "data_dir": "data/mnist", "download": False},
    "digits": {"name": "digits_autoencoder"},
    "digits_clf": {"name": "digits_classifier"},
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
VARIANTS = {  # plain FishLeg plus one option each, off by default in the library
    "fishleg_warm": {"warmup_aux_steps": 50},
    "fishleg_dense": {"dense_aux_steps": 200},
    "fishleg_warm_dense": {"warmup_aux_steps": 50, "dense_aux_steps": 200},
    "fishleg_kfac": {"q_init": "kfac"},
    "fishleg_adaptive": {"adaptive_damping": True},
    "fishleg_aux_lr_start": {"aux_lr_start": 2e-2, "aux_lr_decay_steps": 200},
    "fishleg_bound": {"bound_step": True},
    "fishleg_dense_bound": {"dense_aux_steps": 200, "bound_step": True},
    "fishleg_quadratic": {"step_rule": "quadratic", "lr": 1.0},
    "fishleg_quadratic_adaptive": {"step_rule": "quadratic", "lr": 1.0, "adaptive_damping": True},
    "fishleg_quadratic_warm_dense": {
        "step_rule": "quadratic",
        "lr": 1.0,
        "warmup_aux_steps": 50,
        "dense_aux_steps": 200,
        "damping": 0.03,
    },
}
VARIANTS["fishleg_quadratic_warm_dense_adaptive"] = {
    **VARIANTS["fishleg_quadratic_warm_dense"],
    "adaptive_damping": True,
}
OPTIMIZERS.update({name: {**OPTIMIZERS["fishleg"], **extra} for name, extra in VARIANTS.items()})


def run(
    workload: dict, optimizer: dict, epochs: int, seed: int, at: list[int]
) -> tuple[list[float], dict[int, float], float]:
    """(validation loss per epoch, {epoch: test loss} at the epochs `at`, training seconds);
    a run that diverges has a shorter curve (its last finite epoch)."""
    config = RunConfig.model_validate(
        {
            "workload": workload,
            "optimizer": optimizer,
            "training": {"epochs": epochs, "batch_size": 100, "seed": seed, "device": "auto"},
        }
    )
    trainer = Trainer(config)
    losses, tests, took = [], {}, 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        try:
            losses.append(trainer.run_epoch()["val_loss"])
        except NonFiniteLoss:
            break
        took += time.perf_counter() - start
        if epoch in at:
            tests[epoch] = trainer.test()["test_loss"]
    return losses, tests, took


def epochs_to(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v <= target), None)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--at", type=int, nargs="+", default=[5, 10, 20], help="epochs at which test is reported")
    parser.add_argument("--workloads", nargs="+", default=["mnist5k", "digits"], choices=sorted(WORKLOADS))
    parser.add_argument("--variants", nargs="+", default=["fishleg", "adamw"], choices=sorted(OPTIMIZERS))
    args = parser.parse_args()
    at = sorted(e for e in set(args.at) | {args.epochs} if e <= args.epochs)
    variants = list(dict.fromkeys([*args.variants, "adamw"]))  # AdamW is the yardstick
    summary: dict[str, object] = {"benchmark": "quality", "epochs": args.epochs, "seeds": args.seeds, "at": at}
    for wname in args.workloads:
        curves: dict[str, list[list[float]]] = {o: [] for o in variants}
        tests: dict[str, list[dict[int, float]]] = {o: [] for o in variants}
        seconds = {o: 0.0 for o in variants}
        for opt in variants:
            for seed in range(args.seeds):
                curve, test, took = run(WORKLOADS[wname], OPTIMIZERS[opt], args.epochs, seed, at)
                curves[opt].append(curve)
                tests[opt].append(test)
                seconds[opt] += took
        target = statistics.mean(c[-1] for c in curves["adamw"] if len(c) == args.epochs)
        result = {}
        for opt, all_runs in curves.items():
            runs = [c for c in all_runs if len(c) == args.epochs]  # diverged seeds are counted, not averaged
            finished = [t for c, t in zip(all_runs, tests[opt]) if len(c) == args.epochs]
            mean_curve = [statistics.mean(vals) for vals in zip(*runs)]
            r: dict[str, object] = {
                "diverged_seeds": len(all_runs) - len(runs),
                "val_loss": {e: mean_std([c[e - 1] for c in runs]) for e in at} if runs else None,
                "test_loss": {e: mean_std([t[e] for t in finished]) for e in at} if runs else None,
                "epochs_to_adamw_final_val": epochs_to(mean_curve, target),
                "seconds_per_epoch": seconds[opt] / max(1, sum(len(c) for c in all_runs)),
            }
            result[opt] = r
            shown = (
                "  ".join(f"@{e}: {m:.3f} ± {sd:.3f}" for e, (m, sd) in r["test_loss"].items())
                if runs
                else "every seed diverged"
            )
            print(
                f"{wname:<10} {opt:<19} test {shown}   diverged {r['diverged_seeds']}/{args.seeds}   "
                f"epochs to AdamW's final val {r['epochs_to_adamw_final_val']}   "
                f"{r['seconds_per_epoch']:.2f} s/epoch",
                flush=True,
            )
        summary[wname] = result
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
