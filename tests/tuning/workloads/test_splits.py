"""Train / validation / test: validation is a fixed, seeded share of the training data, the
same for every trial seed; test is the held-out part each data set has."""

import pytest
import torch

from tuning.run.config import WorkloadConfig
from tuning.workloads import build_workload
from tuning.workloads.base import split_validation


def rows(t):
    return {tuple(r.tolist()) for r in t}


def test_split_is_fixed_disjoint_and_ignores_the_global_seed():
    x = torch.arange(200.0).unsqueeze(1)
    torch.manual_seed(1)
    first = split_validation(x, x, 0.1)
    torch.manual_seed(2)
    second = split_validation(x, x, 0.1)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    tx, _, vx, _ = first
    assert len(vx) == 20 and len(tx) == 180
    assert rows(tx).isdisjoint(rows(vx)) and rows(tx) | rows(vx) == rows(x)


@pytest.mark.parametrize(
    ("workload", "sizes"),
    [
        ({"name": "digits_classifier"}, (1150, 287, 360)),
        ({"name": "digits_autoencoder", "val_fraction": 0.5}, (719, 718, 360)),
        ({"name": "mnist_autoencoder", "subset": "mnist5k"}, (3667, 333, 1000)),
        ({"name": "curves_autoencoder", "train_size": 2000, "test_size": 500}, (1800, 200, 500)),
    ],
)
def test_three_disjoint_parts_whatever_the_trial_seed(workload, sizes):
    a = build_workload(WorkloadConfig(**workload), seed=0)
    b = build_workload(WorkloadConfig(**workload), seed=7)
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == sizes
    for name in ("train_x", "val_x", "test_x", "train_y", "val_y", "test_y"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    train, val, test = rows(a.train_x), rows(a.val_x), rows(a.test_x)  # no image repeats in these sets
    assert len(train) + len(val) + len(test) == sum(sizes)
    assert train.isdisjoint(val) and val.isdisjoint(test) and train.isdisjoint(test)
