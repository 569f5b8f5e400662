"""Batches of one split of a workload, from in-memory tensors or from a `Dataset`.

Tensors are indexed by a seeded permutation on their own device (fast for data that fits);
a Dataset goes through a `DataLoader` (streamed, larger than memory, `num_workers`
processes, pinned memory for CUDA) and each batch moves to the device with `non_blocking`.
Both shuffle from the caller's generator, so a run restored with that generator's state
draws the same batches. Under data parallelism every rank draws the same batches and keeps its
`part` of each (DistributedSampler's split), so the ranks' parts of a batch are, together, the
batch one process would draw."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Subset

__all__ = ["ONE_PROCESS", "Batches", "DatasetBatches", "TensorBatches"]

ONE_PROCESS = (0, 1)  # (rank, ranks): the whole of every batch


class Batches(ABC):
    """(x, y) batches of one split; `len` is its number of examples."""

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def inputs(self) -> Tensor | Dataset:
        """The split's inputs as FishLeg's `aux_data` takes them (its auxiliary batches)."""

    @abstractmethod
    def share(self, rank: int, ranks: int) -> Tensor | Dataset:
        """Rank `rank`'s share of `inputs` (every `ranks`-th example), its own auxiliary batches."""

    @abstractmethod
    def iterate(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        part: tuple[int, int] = ONE_PROCESS,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of `batch_size` on the device (when shuffling, the last partial one is dropped);
        with `part` = (rank, ranks), that rank's examples of each: every `ranks`-th from `rank`."""


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

    def share(self, rank: int, ranks: int) -> Tensor:
        """Every `ranks`-th row of x from `rank` (a view)."""
        return self.x[rank::ranks]

    def iterate(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        part: tuple[int, int] = ONE_PROCESS,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled: a permutation from `generator`, full batches only; else in order, all."""
        n = len(self.x)
        rank, ranks = part
        if not shuffle:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                yield self.x[start + rank : stop : ranks], self.y[start + rank : stop : ranks]
            return
        bs = min(batch_size, n)
        perm = torch.randperm(n, generator=generator).to(self.x.device)
        for i in range(n // bs):
            idx = perm[i * bs + rank : (i + 1) * bs : ranks]
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

    def share(self, rank: int, ranks: int) -> Dataset:
        """Every `ranks`-th item from `rank`, as a Subset (nothing is loaded)."""
        return Subset(self.data, range(rank, len(self), ranks))

    def iterate(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        part: tuple[int, int] = ONE_PROCESS,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The DataLoader's batches (shuffled by a seed drawn from `generator`, as DataLoader's
        own `shuffle` draws it), on the device; each rank loads only its part."""
        sampler = RandomSampler(self.data, generator=generator) if shuffle else range(len(self))
        batches = BatchSampler(sampler, batch_size=min(batch_size, len(self)), drop_last=shuffle)
        loader = DataLoader(
            self.data,
            batch_sampler=_Parts(batches, *part),
            generator=generator if shuffle else None,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class _Parts:
    """A batch sampler's batches, each cut to one rank's part (drawn as they are used, so the
    generator is read in the order DataLoader's own shuffle reads it)."""

    def __init__(self, batches: BatchSampler, rank: int, ranks: int) -> None:
        self.batches, self.rank, self.ranks = batches, rank, ranks

    def __iter__(self) -> Iterator[list[int]]:
        return (batch[self.rank :: self.ranks] for batch in self.batches)

    def __len__(self) -> int:
        return len(self.batches)
