"""When the aux loop runs (a callable of the step) and the aux_lr ramp (a torch scheduler)."""

import pytest
import torch
from torch import nn

from fishleg import FishLeg
from fishleg.schedules import EveryK, GeometricRamp

from .trajectories import CASES, FIXTURE, run


def test_every_k_is_the_dense_start_then_every_kth_step():
    assert [s for s in range(1, 13) if EveryK(4, dense=3)(s)] == [1, 2, 3, 4, 8, 12]
    assert [s for s in range(1, 10) if EveryK(3)(s)] == [3, 6, 9]


def test_a_schedule_given_as_update_aux_every_trains_as_the_options_it_absorbs():
    """update_aux_every=EveryK(3, dense=4) is update_aux_every=3 with dense_aux_steps=4."""
    expected = torch.load(FIXTURE, weights_only=True)["dense"]
    options = {k: v for k, v in CASES["dense"].items() if k != "dense_aux_steps"}
    got = run(options | {"update_aux_every": EveryK(3, dense=4)})
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-7)


def test_any_callable_schedules_the_aux_steps():
    x, y = torch.randn(16, 3), torch.randint(3, (16,))
    model = nn.Linear(3, 3)
    opt = FishLeg(model, "categorical", x, aux_batch_size=8, update_aux_every=lambda step: step in (2, 5))
    counts = []
    for _ in range(6):
        opt.zero_grad()
        opt.likelihood.nll(model(x), y).backward()
        opt.step()
        counts.append(opt.aux_step_count)
    assert counts == [0, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("option", [{"dense_aux_steps": 2}, {"adaptive_damping": True}])
def test_options_that_count_steps_refuse_a_callable_schedule(option):
    with pytest.raises(ValueError, match=f"{next(iter(option))} needs update_aux_every as a number of steps"):
        FishLeg(nn.Linear(3, 3), "categorical", torch.randn(8, 3), update_aux_every=EveryK(2), **option)


def test_geometric_ramp_reaches_the_groups_lr_and_stays():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=1e-4)
    ramp = GeometricRamp(opt, start=1e-2, steps=2)
    rates = []
    for _ in range(4):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        ramp.step()
    assert rates == pytest.approx([1e-2, 1e-3, 1e-4, 1e-4])
