"""scikit-learn's 8×8 digits (1,797 real images that ship with the package): the offline default."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from fishleg.likelihoods import BernoulliLikelihood, CategoricalLikelihood
from tuning.workloads.base import Options, Workload, register_workload, split_validation
from tuning.workloads.models import autoencoder, mlp

TEST_SIZE = 360


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64) in 0..16, labels (1797,)), the rows `sklearn.datasets.load_digits`
    returns. Read straight from the file scikit-learn ships: importing scikit-learn costs
    each fresh sweep worker about 1.5 s, more than an epoch of this workload."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else None
    if path is None or not path.exists():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _digits(val_fraction: float) -> tuple[Tensor, ...]:
    """(train x, y, validation x, y, test x, y): pixels scaled to [0, 1]; a fixed permutation
    holds out 360 images for test, and `val_fraction` of the other 1,437 are validation."""
    pixels, labels = load_digits_arrays()
    perm = np.random.default_rng(0).permutation(len(pixels))
    x = torch.from_numpy((pixels[perm] / 16.0).astype(np.float32))
    y = torch.from_numpy(labels[perm].astype(np.int64))
    return (*split_validation(x[TEST_SIZE:], y[TEST_SIZE:], val_fraction), x[:TEST_SIZE], y[:TEST_SIZE])


class DigitsOptions(Options):
    """What both digits workloads share: the validation share of the 1,437 non-test images."""

    val_fraction: float = Field(0.2, gt=0, lt=1, description="0.2: 1,150 train / 287 validation images")


class AutoencoderOptions(DigitsOptions):
    """Options of `digits_autoencoder`: encoder widths and code size (the decoder mirrors them)."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [32, 16], min_length=1)
    code: int = Field(8, gt=0)


class ClassifierOptions(DigitsOptions):
    """Options of `digits_classifier`: hidden widths of the MLP."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [64], min_length=1)


@register_workload("digits_autoencoder", AutoencoderOptions, classifier=False)
def digits_autoencoder(options: AutoencoderOptions, seed: int) -> Workload:
    """A Bernoulli autoencoder of the 8×8 digits (pixels in [0, 1])."""
    tx, _, vx, _, test_x, _ = _digits(options.val_fraction)
    model = autoencoder([64, *options.hidden, options.code])
    return Workload(model, BernoulliLikelihood(), tx, tx, vx, vx, test_x, test_x, classifier=False)


@register_workload("digits_classifier", ClassifierOptions, classifier=True)
def digits_classifier(options: ClassifierOptions, seed: int) -> Workload:
    """An MLP classifying the 8×8 digits into 10 classes."""
    tx, ty, vx, vy, test_x, test_y = _digits(options.val_fraction)
    model = mlp([64, *options.hidden, 10])
    return Workload(model, CategoricalLikelihood(), tx, ty, vx, vy, test_x, test_y, classifier=True)
