"""One schedule protocol: lr, damping and update_aux_every take a number or a callable of the
step; and the aux_lr ramp (a torch scheduler)."""

import pytest
import torch
from torch import nn

from fishleg import FishLeg
from fishleg.step.schedules import AuxSteps, GeometricRamp

from ..trajectories import CASES, FIXTURE, run


def _train(opt: FishLeg, model: nn.Module, steps: int, closure: bool = False) -> list[dict[str, float]]:
    """`steps` steps on one fixed batch; the group's lr and damping and the λ update count after each."""
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 3

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = opt.likelihood.nll(model(x), y)
        value.backward()
        return value

    seen = []
    for _ in range(steps):
        if closure:
            opt.step(loss)
        else:
            loss()
            opt.step()
        group = opt.param_groups[0]
        seen.append({"lr": group["lr"], "damping": group["damping"], "aux": opt.curvature.aux_step_count})
    return seen


def test_aux_steps_are_the_dense_start_then_each_multiple_of_the_interval_at_that_step():
    assert [s for s in range(1, 13) if AuxSteps(4, dense=3)(s)] == [1, 2, 3, 4, 8, 12]
    assert [s for s in range(1, 10) if AuxSteps(3)(s)] == [3, 6, 9]
    assert [s for s in range(1, 13) if AuxSteps(lambda step: 1 if step < 4 else 5)(s)] == [1, 2, 3, 5, 10]


def test_a_callable_interval_trains_as_the_numbers_it_returns():
    """update_aux_every=lambda s: 3 with dense_aux_steps=4 is update_aux_every=3 with the same."""
    expected = torch.load(FIXTURE, weights_only=True)["dense"]
    got = run(CASES["dense"] | {"update_aux_every": lambda step: 3})
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-7)


def test_lr_damping_and_the_aux_interval_follow_their_schedules_step_by_step():
    model = nn.Linear(3, 3)
    x = torch.randn(16, 3)
    opt = FishLeg(
        model,
        "categorical",
        x,
        aux_batch_size=8,
        lr=lambda step: 0.1 / step,
        damping=lambda step: 1.0 + step,
        update_aux_every=lambda step: 2 if step < 5 else 3,
    )
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["damping"] == 2.0  # step 1's, from the start
    seen = _train(opt, model, 7)
    assert [s["lr"] for s in seen] == pytest.approx([0.1 / s for s in range(1, 8)])
    assert [s["damping"] for s in seen] == [1.0 + s for s in range(1, 8)]
    assert [s["aux"] for s in seen] == [0, 1, 1, 2, 2, 3, 3]  # steps 2, 4, then 6


def test_adaptive_damping_judges_the_steps_a_scheduled_interval_names():
    model = nn.Linear(3, 3)
    opt = FishLeg(
        model, "categorical", torch.randn(16, 3), aux_batch_size=8, adaptive_damping=True,
        update_aux_every=lambda step: 1 if step < 3 else 4,
    )  # fmt: skip
    judged = []
    for step in range(1, 9):
        before = opt.damping_rule.last_rho
        _train(opt, model, 1, closure=True)
        if opt.damping_rule.last_rho is not before:  # each judgement leaves a new ρ
            judged.append(step)
    assert judged == [1, 2, 4, 8]


def test_geometric_ramp_reaches_the_groups_lr_and_stays():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=1e-4)
    ramp = GeometricRamp(opt, start=1e-2, steps=2)
    rates = []
    for _ in range(4):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        ramp.step()
    assert rates == pytest.approx([1e-2, 1e-3, 1e-4, 1e-4])
