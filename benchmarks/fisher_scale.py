"""How far apart the layers' Fisher scales are at initialisation, per FishLeg block.

For each block (a layer's [W | b]) prints tr(F_bb)/dim_b, the mean of the Fisher's diagonal
over the block, estimated from per-example gradients at targets drawn from the model
(E[r rᵀ] = H_out, so E‖J_bᵀ r‖² = tr F_bb). Where a block's mean is far below the damping γ,
(F + γI)⁻¹ ≈ I/γ on that block: FishLeg's target there is a plain gradient step, whatever Q
learns, while Adam's per-parameter normalisation rescales each layer. Prints a table, then
one JSON line: per block its mean Fisher diagonal, and the spread (largest ÷ smallest).

    python benchmarks/fisher_scale.py [--workload curves] [--examples 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.func import functional_call, grad, vmap

from fishleg import FishLeg
from tuning.run.config import RunConfig
from tuning.training import Trainer

WORKLOADS = {
    "curves": {"name": "curves_autoencoder"},
    "mnist5k": {"name": "mnist_autoencoder", "subset": "mnist5k"},
    "digits": {"name": "digits_autoencoder"},
    "digits_clf": {"name": "digits_classifier"},
}


def mean_fisher_diagonals(workload: str, examples: int, seed: int) -> dict[str, float]:
    """{block name: tr(F_bb)/dim_b} at the workload's initial parameters, over `examples`
    training inputs, one sampled target each."""
    config = {
        "workload": WORKLOADS[workload],
        "optimizer": {"name": "adamw"},
        "training": {"seed": seed, "device": "cpu"},  # where the sampling generator below lives
    }
    trainer = Trainer(RunConfig.model_validate(config))  # the model and data a run of that seed starts from
    model, likelihood = trainer.model, trainer.likelihood
    inputs = trainer.train.inputs[:examples]
    params = {n: p.detach() for n, p in model.named_parameters()}
    outputs = model(inputs).detach()
    r = likelihood.sample_output_gradient(outputs, torch.Generator().manual_seed(seed))

    def pairing(p: dict[str, torch.Tensor], x: torch.Tensor, r_x: torch.Tensor) -> torch.Tensor:
        return (functional_call(model, p, (x[None],)) * r_x[None]).sum()

    per_example = vmap(grad(pairing), in_dims=(None, 0, 0))(params, inputs, r)
    blocks = FishLeg(model, likelihood, aux_data="manual").curvature.blocks
    return {
        "+".join(b.names): float(sum(per_example[n].pow(2).sum() for n in b.names) / len(inputs) / b.grad.numel())
        for b in blocks
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="curves", choices=sorted(WORKLOADS))
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    means = mean_fisher_diagonals(args.workload, args.examples, args.seed)
    for name, value in means.items():
        print(f"{name:<28} tr(F)/dim {value:.3e}")
    spread = max(means.values()) / min(means.values())
    print(f"spread (largest / smallest): {spread:.3g}")
    print(json.dumps({"benchmark": "fisher_scale", "workload": args.workload, "blocks": means, "spread": spread}))


if __name__ == "__main__":
    main()
