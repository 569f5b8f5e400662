"""Batches of one split of a workload, from in-memory tensors or from a `Dataset`.

Tensors are indexed by a seeded permutation on their own device (fast for data that fits);
a Dataset goes through a `DataLoader` (streamed, larger than memory, `num_workers`
processes, pinned memory for CUDA) and each batch moves to the device with `non_blocking`.
Both shuffle from the caller's generator, so a run restored with that generator's state
draws the same batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = ["Batches", "DatasetBatches", "TensorBatches"]


class Batches(ABC):
    """(x, y) batches of one split; `len` is its number of examples."""

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def inputs(self) -> Tensor | Dataset:
        """The split's inputs as FishLeg's `aux_data` takes them (its auxiliary batches)."""

    @abstractmethod
    def iterate(
        self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of `batch_size` on the device (when shuffling, the last partial one is dropped)."""


class TensorBatches(Batches):
    """Batches of x (N, ...) and y (N, ...), moved to `device` once."""

    def __init__(self, x: Tensor, y: Tensor, device: torch.device) -> None:
        self.x, self.y = x.to(device), y.to(device)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def inputs(self) -> Tensor:
        """x, on the device."""
        return self.x

    def iterate(
        self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled: a permutation from `generator`, full batches only; else in order, all."""
        n = len(self.x)
        if not shuffle:
            for start in range(0, n, batch_size):
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            return
        bs = min(batch_size, n)
        perm = torch.randperm(n, generator=generator).to(self.x.device)
        for i in range(n // bs):
            idx = perm[i * bs : (i + 1) * bs]
            yield self.x[idx], self.y[idx]


class DatasetBatches(Batches):
    """Batches of a map-style Dataset of (x, y) items through a DataLoader."""

    def __init__(self, data: Dataset, device: torch.device, num_workers: int = 0) -> None:
        self.data = data
        self.device = device
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    @property
    def inputs(self) -> Dataset:
        """The Dataset itself (FishLeg takes the first element of each item)."""
        return self.data

    def iterate(
        self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The DataLoader's batches (shuffled by a seed drawn from `generator`), on the device."""
        loader = DataLoader(
            self.data,
            batch_size=min(batch_size, len(self)),
            shuffle=shuffle,
            drop_last=shuffle,
            generator=generator if shuffle else None,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
