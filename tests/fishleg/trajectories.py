"""Short recorded FishLeg runs, one per option, so that a change to how the optimizer is built
shows whether the same config still trains the same numbers.

`python -m tests.fishleg.trajectories [CASE ...]` rewrites the named cases (or all) in
`data/trajectories.pt` from the current code; do that only for a change meant to alter the
numbers, and say so in its commit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fishleg import FishLeg

FIXTURE = Path(__file__).with_name("data") / "trajectories.pt"
STEPS = 9

CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "diag": {"q_structure": "diag"},
    "kron_diag": {"q_structure": "kron_diag"},
    "kron_sum": {"q_structure": "kron_sum"},
    "warmup": {"warmup_aux_steps": 2},
    "dense": {"dense_aux_steps": 4},
    "adaptive_damping": {"adaptive_damping": True},
    "quadratic_step": {"step_rule": "quadratic", "lr": 1.0},
    "quadratic_adaptive": {"step_rule": "quadratic", "adaptive_damping": True, "lr": 1.0},
    "bound_step": {"bound_step": True, "damping": 0.05},
    "kfac_init": {"q_init": "kfac"},
    "aux_lr_ramp": {"aux_lr_start": 1e-2, "aux_lr_decay_steps": 2},
    "gaussian": {"u_sampling": "gaussian"},
    "plain_aux": {"normalize_aux": False, "precondition_aux": False},
    "no_weight_decay": {"weight_decay": 0.0, "beta": 0.5},
    "graft": {"graft": "adam", "lr": 0.01},
    "graft_kfac_every": {"graft": "adam", "lr": 0.01, "q_init": "kfac", "kfac_every": 4},
    "partner_head": {"partner": "adamw", "partner_params": "head"},
    "kfac_only": {"q_init": "kfac", "kfac_every": 4, "learn_q": False},
    "identity_only_graft": {"graft": "adam", "lr": 0.01, "learn_q": False},
}


def run(options: dict[str, Any]) -> dict[str, torch.Tensor]:
    """STEPS closure steps of a tiny classifier; the losses, final parameters and λ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(48, 5), torch.randint(0, 3, (48,))
    settings = {"lr": 0.1, "aux_lr": 0.05, "aux_batch_size": 16, "damping": 0.3, "update_aux_every": 3, "seed": 0}
    opt = FishLeg(model, "categorical", aux_data=x, **(settings | options))
    losses = []
    for step in range(STEPS):
        xb, yb = x[16 * (step % 3) : 16 * (step % 3 + 1)], y[16 * (step % 3) : 16 * (step % 3 + 1)]

        def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
            opt.zero_grad()
            loss = opt.likelihood.nll(model(xb), yb)
            loss.backward()
            return loss

        losses.append(opt.step(closure).detach())
    lambdas = [lam.detach().flatten() for b in opt.curvature.blocks for lam in b.structure.params]
    return {
        "losses": torch.stack(losses),
        "params": torch.cat([p.detach().flatten() for p in model.parameters()]),
        "lambda": torch.cat(lambdas),
        "damping_scale": opt.damping_rule.scale.detach().clone(),
    }


def tolerance() -> dict[str, float]:
    """assert_close's tolerance for a replay: rtol 1e-5 leaves room for another CPU's vector
    width (summation order); FISHLEG_EXACT_TRAJECTORIES=1 asks for every bit (a redesign is
    checked so on the recording CPU)."""
    exact = os.environ.get("FISHLEG_EXACT_TRAJECTORIES") == "1"
    return {"rtol": 0.0, "atol": 0.0} if exact else {"rtol": 1e-5, "atol": 1e-7}


def record(names: list[str]) -> None:
    """Rewrite the named cases' runs in FIXTURE (every case if none is named)."""
    FIXTURE.parent.mkdir(exist_ok=True)
    recorded = torch.load(FIXTURE, weights_only=True) if FIXTURE.exists() and names else {}
    torch.save(recorded | {name: run(CASES[name]) for name in names or CASES}, FIXTURE)


if __name__ == "__main__":
    record(sys.argv[1:])
