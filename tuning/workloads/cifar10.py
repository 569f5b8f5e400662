"""CIFAR-10 with a CIFAR ResNet (BatchNorm), standard augmentation done on tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from fishleg.likelihoods import CategoricalLikelihood
from tuning.data.cifar10 import check_available, load_cifar10
from tuning.workloads.base import Options, Workload, register_workload, split_validation
from tuning.workloads.models import resnet_cifar

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class CifarOptions(Options):
    """Options of `cifar10_resnet`."""

    data_dir: Path = Path("data/cifar10")
    depth: Literal[20, 32, 44, 56, 110] = 20
    width: int = Field(16, gt=0)
    download: bool = True
    train_subset: int | None = Field(None, gt=0, description="train on only N of the images left after validation")
    augment: bool = True


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop with zero padding and random horizontal flip. x: (B, C, H, W) → same."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(2 * padding + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def _check(options: CifarOptions) -> None:
    check_available(options.data_dir.expanduser(), options.download)


@register_workload("cifar10_resnet", CifarOptions, classifier=True, check=_check)
def cifar10_resnet(options: CifarOptions, seed: int) -> Workload:
    """Validation is 5,000 of the 50,000 training images (`val_fraction` 0.1, the usual 45,000 /
    5,000); test is the official 10,000-image test batch."""
    x, y, test_x, test_y = load_cifar10(options.data_dir.expanduser(), options.download)
    tx, ty, vx, vy = split_validation(x, y, options.val_fraction)
    if options.train_subset is not None:
        tx, ty = tx[: options.train_subset], ty[: options.train_subset]
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    tx, vx, test_x = ((t - mean) / std for t in (tx, vx, test_x))
    model = resnet_cifar(options.depth, 10, options.width)
    augment = random_crop_flip if options.augment else None
    return Workload(model, CategoricalLikelihood(), tx, ty, vx, vy, test_x, test_y, classifier=True, augment=augment)
