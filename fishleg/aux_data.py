"""Auxiliary batches of inputs for the Fisher: drawn with replacement from a seeded
generator, so a restored optimizer draws exactly the batches the original would have."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

__all__ = ["AuxData", "AuxSampler", "first_input"]

AuxData = Dataset | Tensor | Iterable[Any]


def first_input(item: Any) -> Tensor:
    """The inputs of a (inputs, targets, ...) item; a bare tensor is its own input."""
    return item[0] if isinstance(item, (tuple, list)) else item


class AuxSampler:
    """Draws batches of `batch_size` inputs from a tensor, a map-style Dataset, or (cycled,
    not resumable mid-epoch) an iterable of batches."""

    def __init__(self, data: AuxData, batch_size: int, device: torch.device, seed: int) -> None:
        self.data = data
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self._iterator: Iterator[Any] | None = None
        self._indexable = isinstance(data, Tensor) or (isinstance(data, Dataset) and hasattr(data, "__len__"))
        if not self._indexable and not isinstance(data, Iterable):
            raise ValueError(
                "FishLeg: aux_data must be a tensor of inputs, a map-style Dataset or an "
                f"iterable of input batches, got {type(data).__name__}"
            )

    def peek(self) -> Tensor | None:
        """Two inputs for checking shapes, without consuming anything; None if unknowable."""
        if isinstance(self.data, Tensor):
            return self.data[:2].to(self.device)
        if self._indexable:
            return default_collate([first_input(self.data[i]) for i in range(min(2, len(self.data)))]).to(self.device)
        return None

    def draw(self) -> Tensor:
        """A batch of `batch_size` inputs on the optimizer's device."""
        if isinstance(self.data, Tensor):
            idx = torch.randint(len(self.data), (self.batch_size,), generator=self.generator)
            return self.data[idx.to(self.data.device)].to(self.device, non_blocking=True)
        if self._indexable:
            idx = torch.randint(len(self.data), (self.batch_size,), generator=self.generator)
            batch = default_collate([first_input(self.data[i]) for i in idx.tolist()])
            return batch.to(self.device, non_blocking=True)
        return self._next_batch()

    def _next_batch(self) -> Tensor:
        item = None if self._iterator is None else next(self._iterator, None)
        if item is None:
            self._iterator = iter(self.data)
            item = next(self._iterator, None)
            if item is None:
                raise ValueError("FishLeg: aux_data is an empty iterable")
        return first_input(item)[: self.batch_size].to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Tensor]:
        """The sampler's RNG state (what a restored optimizer needs to draw the same batches)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the RNG state saved by `state_dict`."""
        self.generator.set_state(state["generator"])
