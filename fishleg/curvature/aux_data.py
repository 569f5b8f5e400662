"""Auxiliary batches of inputs for the Fisher: drawn with replacement from a seeded
generator, so a restored optimizer draws exactly the batches the original would have.

Training loops that own their data (Lightning, the Hugging Face Trainer, a torchrun script)
hand FishLeg their train DataLoader through `aux_from_loader`: its dataset, drawn from by
index, collated by the loader's own collate function."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

__all__ = ["AuxData", "AuxSampler", "LoaderAux", "aux_from_loader", "first_input"]


def first_input(item: Any) -> Tensor:
    """The inputs of a (inputs, targets, ...) item; a bare tensor is its own input."""
    return item[0] if isinstance(item, (tuple, list)) else item


InputKey = int | str | Callable[[Any], Tensor]
"""Where a collated batch keeps the model's input: a position (tuple batches), a key (mapping
batches, e.g. "input_ids") or a function of the batch."""


def _pick(batch: Any, key: InputKey) -> Tensor:
    """The model's input in a collated batch."""
    if callable(key):
        return key(batch)
    if isinstance(batch, Mapping):
        if key not in batch:
            raise ValueError(
                f"aux_from_loader: the loader's batches are mappings with keys {sorted(batch)}; name the "
                f"model's input among them, e.g. inputs={next(iter(batch))!r} (got inputs={key!r})"
            )
        return batch[key]
    if isinstance(batch, (tuple, list)):
        if not isinstance(key, int):
            raise ValueError(f"aux_from_loader: batches are sequences; inputs must be an index, got {key!r}")
        return batch[key]
    return batch


class LoaderAux:
    """A DataLoader as FishLeg's aux data (made by `aux_from_loader`): map-style datasets are
    drawn from by index and collated with the loader's `collate_fn` (resumable: the draws
    follow the optimizer's saved generator); iterable ones are cycled batch by batch."""

    def __init__(self, loader: DataLoader, inputs: InputKey = 0) -> None:
        if not isinstance(loader, DataLoader):
            raise ValueError(
                f"aux_from_loader: expected a torch DataLoader or an object with a train_dataloader() method (a "
                f"LightningDataModule), got {type(loader).__name__}"
            )
        self.loader = loader
        self.inputs = inputs
        dataset = loader.dataset
        self.indexable = hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")

    def __len__(self) -> int:
        return len(self.loader.dataset)

    def batch(self, indices: list[int]) -> Tensor:
        """The inputs of the dataset items at `indices`, collated as the loader collates them."""
        dataset = self.loader.dataset
        return _pick(self.loader.collate_fn([dataset[i] for i in indices]), self.inputs)

    def __iter__(self) -> Iterator[Tensor]:
        return (_pick(batch, self.inputs) for batch in self.loader)


def aux_from_loader(loader: DataLoader | Any, inputs: InputKey = 0) -> LoaderAux:
    """FishLeg's aux data from a training loop's own train DataLoader: Lightning's
    `train_dataloader()`, the Hugging Face Trainer's `get_train_dataloader()`, a torchrun
    script's loader, or anything with a `train_dataloader()` method, such as a Lightning
    module's `self.trainer.datamodule` (whose loader a module trained with a LightningDataModule
    does not have itself). inputs: where a collated batch keeps the model's input (0 for
    (inputs, targets) batches, "input_ids" for a tokenizer's dict batches, or a function)."""
    if not isinstance(loader, DataLoader) and callable(getattr(loader, "train_dataloader", None)):
        loader = loader.train_dataloader()
    return LoaderAux(loader, inputs)


AuxData = Dataset | Tensor | LoaderAux | Iterable[Any]


class AuxSampler:
    """Draws batches of `batch_size` inputs from a tensor, a map-style Dataset, a `LoaderAux`,
    or (cycled, not resumable mid-epoch) an iterable of batches."""

    def __init__(self, data: AuxData, batch_size: int, device: torch.device, seed: int) -> None:
        self.data = data
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self._iterator: Iterator[Any] | None = None
        self._indexable = (
            isinstance(data, Tensor)
            or (isinstance(data, Dataset) and hasattr(data, "__len__"))
            or (isinstance(data, LoaderAux) and data.indexable)
        )
        if not self._indexable and not isinstance(data, Iterable):
            raise ValueError(
                "FishLeg: aux_data must be a tensor of inputs, a map-style Dataset, aux_from_loader(loader) or "
                f"an iterable of input batches, got {type(data).__name__}"
            )

    def _collate(self, indices: list[int]) -> Tensor:
        if isinstance(self.data, LoaderAux):
            return self.data.batch(indices)
        return default_collate([first_input(self.data[i]) for i in indices])

    def peek(self) -> Tensor | None:
        """Two inputs for checking shapes, without consuming anything; None if unknowable."""
        if isinstance(self.data, Tensor):
            return self.data[:2].to(self.device)
        if self._indexable:
            return self._collate(list(range(min(2, len(self.data))))).to(self.device)
        return None

    def draw(self) -> Tensor:
        """A batch of `batch_size` inputs on the optimizer's device."""
        if not self._indexable:
            return self._next_batch()
        idx = torch.randint(len(self.data), (self.batch_size,), generator=self.generator)
        if isinstance(self.data, Tensor):
            return self.data[idx.to(self.data.device)].to(self.device, non_blocking=True)
        return self._collate(idx.tolist()).to(self.device, non_blocking=True)

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
        self.generator.set_state(state["generator"].cpu())
