"""How well FishLeg's learnt Q fits each block's damped Fisher on the transformer example, by
layer kind, after training with the grafted drop-in recipe (benchmarks/drop_in.py's).

For each block b, on a fresh aux batch, with u the block's current gradient and F_bb its
diagonal Fisher block (the part a block-diagonal Q can fit), it reports:
- `fisher_scale`: ‖F_bb u‖ / ‖u‖, the curvature along u, to compare with the damping γ
  (where it is far below γ, (F + γI)⁻¹ ≈ I/γ and no Q can beat a scaled identity);
- `residual_q`: ‖(F_bb + γI) Q u − u‖ / ‖u‖, how far the learnt Q is from the inverse along u
  (0: exact; 1: Q u = 0);
- `residual_q_direction`: the same for the best scalar multiple of Q (c·Q with
  c = ⟨AQu, u⟩ / ‖AQu‖², A = F_bb + γI): how good Q's direction is, which is all grafting uses;
- `residual_identity`: the same for the best scalar multiple of the identity, the identity-Q
  control's direction.
Prints one line per block and, last, one JSON line with the medians per layer kind.

    python benchmarks/aux_fit.py [--steps 300] [--damping 1e-3] [--aux-lr 1e-3] [--q-init kfac]
        [--scale-free] [--no-aux]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the examples package, beside benchmarks/
from benchmarks.drop_in import CHARLM  # noqa: E402
from examples.charlm.train import build  # noqa: E402
from fishleg import FishLeg  # noqa: E402
from fishleg.curvature.fisher import fisher_vector_product  # noqa: E402
from fishleg.likelihoods import CategoricalLikelihood  # noqa: E402
from tuning.run.config import RunConfig  # noqa: E402


def kind(names: list[str]) -> str:
    """The layer kind of a block, from its first parameter's name."""
    name = names[0]
    kinds = {"qkv": "attention qkv", "proj": "attention out", "mlp.0": "mlp in", "mlp.2": "mlp out",
             "head": "head", "token": "embedding", "position": "embedding"}  # fmt: skip
    for part, label in kinds.items():
        if part in name:
            return label
    return "norm" if "norm" in name else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--damping", type=float, default=1e-3)
    parser.add_argument("--aux-lr", type=float, default=1e-3)
    parser.add_argument("--update-aux-every", type=int, default=10)
    parser.add_argument("--q-init", choices=["identity", "kfac"], default="identity")
    parser.add_argument("--scale-free", action="store_true", help="scale_free_aux: fit Q's direction only")
    parser.add_argument("--no-aux", action="store_true", help="learn_q false: Q stays where q_init put it")
    args = parser.parse_args()
    config = RunConfig.model_validate(
        {"trainable": CHARLM, "optimizer": {"name": "adamw"}, "training": {"epochs": 1, "batch_size": 32, "seed": 0}}
    )
    _, model, (train, _, _) = build(config, seed=0)
    likelihood = CategoricalLikelihood()
    recipe = {"lr": 9.1e-3, "weight_decay": 2.3e-3, "graft": "adam", "aux_batch_size": 32, "seed": 0}
    opt = FishLeg(model, likelihood, aux_data=train, damping=args.damping, aux_lr=args.aux_lr,
                  update_aux_every=args.update_aux_every, q_init=args.q_init, scale_free_aux=args.scale_free,
                  learn_q=not args.no_aux, **recipe)  # fmt: skip
    loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True)
    batches = (batch for _ in range(1000) for batch in loader)  # epochs, reshuffled, as long as needed
    for _ in range(args.steps):
        x, y = next(batches)
        opt.zero_grad()
        likelihood.nll(model(x), y.flatten()).backward()
        opt.step()
    x, y = next(batches)
    opt.zero_grad()
    likelihood.nll(model(x), y.flatten()).backward()
    inputs = opt.curvature.aux_sampler.draw()
    gamma = float(opt.damping_rule.gamma())
    rows = []
    for b in opt.curvature.blocks:
        u = b.join([p.grad.detach() for p in b.params])
        params = {n: p.detach() for n, p in zip(b.names, b.params)}

        def damped(v: torch.Tensor, b=b, params=params) -> torch.Tensor:
            fv, _ = fisher_vector_product(model, likelihood, inputs, params, dict(zip(b.names, b.split(v))))
            return b.join([fv[n] for n in b.names]) + gamma * v

        au = damped(u)
        aqu = damped(b.structure.apply_cached(u, torch.empty_like(u)))
        norm = u.norm()

        def best_scaled(av: torch.Tensor, u: torch.Tensor = u, norm: torch.Tensor = norm) -> float:
            return float(((av * u).sum() / av.pow(2).sum() * av - u).norm() / norm)

        row = {
            "block": b.names[0],
            "kind": kind(b.names),
            "fisher_scale": float((au - gamma * u).norm() / norm),
            "residual_q": float((aqu - u).norm() / norm),
            "residual_q_direction": best_scaled(aqu),
            "residual_identity": best_scaled(au),
        }
        rows.append(row)
        print(
            f"{row['block']:<28} {row['kind']:<14} ‖Fu‖/‖u‖ {row['fisher_scale']:.2e}   "
            f"residual: Q {row['residual_q']:.3f}  best cQ {row['residual_q_direction']:.3f}  "
            f"best cI {row['residual_identity']:.3f}",
            flush=True,
        )
    summary: dict[str, object] = {"benchmark": "aux_fit", "steps": args.steps, "damping": gamma, "aux_lr": args.aux_lr,
                                  "update_aux_every": args.update_aux_every, "q_init": args.q_init,
                                  "scale_free_aux": args.scale_free, "learn_q": not args.no_aux}  # fmt: skip
    for k in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == k]
        keys = ("fisher_scale", "residual_q", "residual_q_direction", "residual_identity")
        summary[k] = {key: statistics.median(r[key] for r in mine) for key in keys}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
