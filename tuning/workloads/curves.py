"""CURVES (regenerated, see `tuning.data.curves`) and its deep autoencoder, 784-400-200-100-
50-25-6 and mirrored, as in Hinton & Salakhutdinov (2006) and the K-FAC and FishLeg papers:
20,000 training images (of which `val_fraction` is held out for validation) and 10,000 test
images, each set from its own seed, the same on every machine."""

from __future__ import annotations

from pydantic import Field

from fishleg.likelihoods import BernoulliLikelihood
from tuning.data.curves import curves
from tuning.workloads.base import Options, Workload, register_workload, split_validation
from tuning.workloads.models import autoencoder

__all__ = ["CURVES_DIMS", "CurvesOptions", "curves_autoencoder"]

CURVES_DIMS = (784, 400, 200, 100, 50, 25, 6)
TRAIN_SEED, TEST_SEED = 2006, 2007  # the data never depend on a run's seed


class CurvesOptions(Options):
    """Options of `curves_autoencoder`."""

    val_fraction: float = Field(0.1, gt=0, lt=1, description="0.1: 18,000 / 2,000 of the 20,000 training images")
    train_size: int = Field(20_000, gt=1, description="training images generated (the papers: 20,000)")
    test_size: int = Field(10_000, gt=0, description="test images generated (the papers: 10,000)")


@register_workload("curves_autoencoder", CurvesOptions, classifier=False)
def curves_autoencoder(options: CurvesOptions, seed: int) -> Workload:
    """The CURVES autoencoder benchmark; Bernoulli likelihood on the [0, 1] intensities."""
    x = curves(options.train_size, TRAIN_SEED)
    test_x = curves(options.test_size, TEST_SEED)
    tx, _, vx, _ = split_validation(x, x, options.val_fraction)
    return Workload(autoencoder(CURVES_DIMS), BernoulliLikelihood(), tx, tx, vx, vx, test_x, test_x, classifier=False)
