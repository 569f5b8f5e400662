"""The same config trains the same numbers: each option's short run against its recording
(`tests/fishleg/trajectories.py`), so that reshaping the optimizer cannot change what it does."""

import pytest
import torch

from .trajectories import CASES, FIXTURE, run, tolerance


@pytest.mark.parametrize("case", sorted(CASES))
def test_option_replays_its_recorded_trajectory(case):
    """Exact on the CPU that recorded it; rtol 1e-5 leaves room for another CPU's vector width
    (summation order), far below what a change to the maths moves: every case differs from the
    default run by ≥ 2e-3 in its parameters (`tolerance`)."""
    expected = torch.load(FIXTURE, weights_only=True)[case]
    got = run(CASES[case])
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, **tolerance(), msg=f"{case}: {key}")
