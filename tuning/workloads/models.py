"""The benchmark models, in plain torch.nn (no torchvision)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["autoencoder", "mlp", "mnist_autoencoder", "resnet_cifar"]


def autoencoder(dims: Sequence[int]) -> nn.Sequential:
    """Mirrored deep autoencoder with ReLU hidden units and a linear code; outputs logits.

    dims: input, hidden..., code. The decoder mirrors the encoder."""
    widths = list(dims) + list(dims[-2::-1])
    layers: list[nn.Module] = []
    code = len(dims) - 1
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i + 1 != code and i + 1 != len(widths) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mnist_autoencoder() -> nn.Sequential:
    """The FishLeg paper's MNIST autoencoder, 784-1000-500-250-30 and mirrored."""
    return autoencoder([784, 1000, 500, 250, 30])


def mlp(dims: Sequence[int]) -> nn.Sequential:
    """Classifier MLP: dims = input, hidden..., classes."""
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): 3 stages of n basic blocks, 16/32/64 channels."""

    def __init__(self, depth: int = 20, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 (20, 32, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def resnet_cifar(depth: int = 20, num_classes: int = 10, width: int = 16) -> ResNetCifar:
    """The CIFAR ResNet of He et al. (2016): depth 6n+2, widths width·(1, 2, 4)."""
    return ResNetCifar(depth, num_classes, width)
