"""FishLeg as a drop-in for AdamW: the same lr and weight decay as AdamW, the step's length
grafted from Adam (`graft: adam`), against that AdamW and against the identity-Q control
(the same grafting with Q fixed at the identity: its aux loop never runs, so the direction is
momentum-SGD's). A gain is FishLeg's only where it beats that control at equal settings.

AdamW's settings per workload: the transformer example's tuned lr 9.1e-3 and weight decay
2.3e-3 (`fishleg-tune compare examples/charlm/sweep.yaml examples/charlm/sweep_adamw.yaml`),
elsewhere its usual lr 1e-3 and weight decay 1e-2. FishLeg's own settings are one recipe for
every workload (no search): damping 1e-3, aux_lr 1e-3, an aux step every 10 steps, kron Q;
`+partner` also hands embeddings and LayerNorms to AdamW; `_kfac` starts Q at K-FAC's
estimate, `_kfac_every` makes that estimate again every 100 steps. Validation every epoch;
nothing is chosen, so the test split is evaluated once, at the last epoch. Prints a table
and, last, one JSON line: per workload and variant, mean ± std over seeds of validation (at the last epoch)
and test, the epochs to AdamW's final mean validation, and seconds per epoch.

    python benchmarks/drop_in.py [--seeds 3] [--workloads charlm digits_clf mnist5k curves]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the examples package, beside benchmarks/

from benchmarks.quality import epochs_to, mean_std  # noqa: E402
from tuning.errors import NonFiniteLoss  # noqa: E402
from tuning.run.config import RunConfig  # noqa: E402
from tuning.run.fit import LocalContext, load_fit  # noqa: E402
from tuning.training import Trainer  # noqa: E402

CHARLM = {
    "name": "examples.charlm.train:fit",
    "num_chars": 400000,
    "context": 64,
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "batches_per_epoch": 100,
    "eval_windows": 256,
}
WORKLOADS: dict[str, dict[str, Any]] = {  # run config fragment, epochs, AdamW's (lr, weight decay)
    "charlm": {"config": {"trainable": CHARLM}, "epochs": 8, "batch": 32, "adamw": (9.1e-3, 2.3e-3)},
    "digits_clf": {"config": {"workload": {"name": "digits_classifier"}}, "epochs": 20, "batch": 100},
    "mnist5k": {"config": {"workload": {"name": "mnist_autoencoder", "subset": "mnist5k"}}, "epochs": 20, "batch": 100},
    "curves": {"config": {"workload": {"name": "curves_autoencoder"}}, "epochs": 20, "batch": 100},
}
RECIPE = {"name": "fishleg", "graft": "adam", "damping": 1e-3, "aux_lr": 1e-3, "update_aux_every": 10}
VARIANTS: dict[str, dict[str, Any]] = {
    "adamw": {"name": "adamw"},
    "fishleg_graft": RECIPE,
    "fishleg_graft+partner": {**RECIPE, "partner": "adamw"},
    "fishleg_graft_kfac": {**RECIPE, "q_init": "kfac"},  # Q starts at K-FAC's direction (benchmarks/aux_fit.py)
    "fishleg_graft_kfac_every": {**RECIPE, "q_init": "kfac", "kfac_every": 100},  # and again every 100 steps
    "kfac_only_every": {**RECIPE, "q_init": "kfac", "kfac_every": 100, "learn_q": False},  # no aux loop between
    "fishleg_graft_kfac_every_scale_free": {  # the aux loop fits Q's direction only, with 10× the aux_lr
        **RECIPE,
        "q_init": "kfac",
        "kfac_every": 100,
        "scale_free_aux": True,
        "aux_lr": 1e-2,
    },
    "fishleg_graft_kfac_every_aux_lr": {**RECIPE, "q_init": "kfac", "kfac_every": 100, "aux_lr": 1e-2},
    "identity_graft": {**RECIPE, "update_aux_every": 10**9},  # Q stays init_scale·I
}


def optimizer(variant: str, workload: dict[str, Any]) -> dict[str, Any]:
    lr, weight_decay = workload.get("adamw", (1e-3, 1e-2))
    extra = {} if variant == "adamw" else {"aux_batch_size": min(workload["batch"], 100)}
    return {**VARIANTS[variant], "lr": lr, "weight_decay": weight_decay, **extra}


def run(workload: dict[str, Any], variant: str, seed: int) -> tuple[list[float], float | None, float]:
    """(validation loss per epoch, test loss at the last epoch, seconds per epoch); a run that
    diverges has a shorter curve and no test loss."""
    config = RunConfig.model_validate(
        {
            **workload["config"],
            "optimizer": optimizer(variant, workload),
            "training": {"epochs": workload["epochs"], "batch_size": workload["batch"], "seed": seed, "device": "cpu"},
        }
    )
    start = time.perf_counter()
    if config.trainable is not None:
        return _run_fit(config, start)
    trainer = Trainer(config)
    curve = []
    for _ in range(workload["epochs"]):
        try:
            curve.append(trainer.run_epoch()["val_loss"])
        except NonFiniteLoss:
            return curve, None, (time.perf_counter() - start) / max(1, len(curve))
    took = (time.perf_counter() - start) / len(curve)
    return curve, trainer.test()["test_loss"], took


def _run_fit(config: RunConfig, start: float) -> tuple[list[float], float | None, float]:
    """A user's training function (the transformer example) in plain Python; test once, on the
    last checkpoint."""
    from examples.charlm.train import build, evaluate

    context = LocalContext(config)
    try:
        load_fit(config.trainable.name)(config, context)
    except NonFiniteLoss:
        pass
    curve = [row["val_loss"] for row in context.history]
    took = (time.perf_counter() - start) / max(1, len(curve))
    if len(curve) < config.training.epochs or not all(math.isfinite(v) for v in curve):
        return curve, None, took
    _, model, (_, _, test) = build(config, config.training.seed)
    model.load_state_dict(context.saved.state["model"])
    return curve, evaluate(model, test, 10**9, torch.device("cpu")), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=["charlm", "digits_clf"], choices=sorted(WORKLOADS))
    parser.add_argument("--variants", nargs="+", default=sorted(VARIANTS), choices=sorted(VARIANTS))
    args = parser.parse_args()
    variants = list(dict.fromkeys(["adamw", *args.variants]))  # AdamW is the yardstick
    summary: dict[str, Any] = {"benchmark": "drop_in", "seeds": args.seeds}
    for name in args.workloads:
        workload = WORKLOADS[name]
        runs = {v: [run(workload, v, seed) for seed in range(args.seeds)] for v in variants}
        finished = {v: [r for r in rs if r[1] is not None] for v, rs in runs.items()}
        target = statistics.mean(r[0][-1] for r in finished["adamw"])
        result = {}
        for v in variants:
            done = finished[v]
            mean_curve = [statistics.mean(vals) for vals in zip(*(r[0] for r in done))] if done else []
            result[v] = {
                "diverged_seeds": args.seeds - len(done),
                "val_loss": mean_std([r[0][-1] for r in done]) if done else None,
                "test_loss": mean_std([r[1] for r in done]) if done else None,
                "epochs_to_adamw_final_val": epochs_to(mean_curve, target),
                "seconds_per_epoch": statistics.mean(r[2] for r in runs[v]),
            }
            r = result[v]
            val, test = r["val_loss"], r["test_loss"]
            shown = f"val {val[0]:.3f} ± {val[1]:.3f}  test {test[0]:.3f}" if done else "diverged"
            print(
                f"{name:<10} {v:<22} {shown}   diverged {r['diverged_seeds']}/{args.seeds}   "
                f"epochs to AdamW's final val {r['epochs_to_adamw_final_val']} of {workload['epochs']}   "
                f"{r['seconds_per_epoch']:.2f} s/epoch",
                flush=True,
            )
        summary[name] = result
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
