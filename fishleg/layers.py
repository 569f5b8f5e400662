"""Module-type adapters: how a layer's parameters form the block U on which Q(λ) acts.

A registered layer (Linear, Conv*) gets the chosen `q_structure` on U = [W | b] of shape
(out, in·k + 1); every other parameter (norm layers, embeddings, anything unknown) is its own
block with a diagonal Q.  Register an adapter for your own module type with
`register_layer(MyModule)(WeightBiasAdapter)` or a subclass of `LayerAdapter`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from torch import Tensor, nn

__all__ = ["LAYERS", "LayerAdapter", "WeightBiasAdapter", "adapter_for", "register_layer"]


class LayerAdapter(ABC):
    """Maps a module's parameters to one matrix block and back (as views, so no copies)."""

    @abstractmethod
    def params(self, module: nn.Module) -> list[nn.Parameter]:
        """The module's trainable parameters that form the block, in block order."""

    @abstractmethod
    def block_shape(self, module: nn.Module) -> tuple[int, int]:
        """(rows, cols) of the block U."""

    @abstractmethod
    def split(self, module: nn.Module, block: Tensor) -> list[Tensor]:
        """Views of `block` (rows, cols) shaped like `params(module)`, in the same order."""


class WeightBiasAdapter(LayerAdapter):
    """weight (out, ...) and optional bias (out,) → U = [W.reshape(out, -1) | b]."""

    def params(self, module: nn.Module) -> list[nn.Parameter]:
        return [p for p in (module.weight, getattr(module, "bias", None)) if p is not None]

    def block_shape(self, module: nn.Module) -> tuple[int, int]:
        weight = module.weight
        has_bias = getattr(module, "bias", None) is not None
        return weight.shape[0], weight[0].numel() + int(has_bias)

    def split(self, module: nn.Module, block: Tensor) -> list[Tensor]:
        weight = module.weight
        cols = weight[0].numel()
        views = [block[:, :cols].view(weight.shape)]
        if getattr(module, "bias", None) is not None:
            views.append(block[:, cols])
        return views


LAYERS: dict[type[nn.Module], LayerAdapter] = {}
_A = TypeVar("_A", bound="type[LayerAdapter]")


def register_layer(*module_types: type[nn.Module]) -> Callable[[_A], _A]:
    """Class decorator: use this adapter (and so the chosen q_structure) for these types."""

    def wrap(cls: _A) -> _A:
        for module_type in module_types:
            LAYERS[module_type] = cls()
        return cls

    return wrap


register_layer(nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)(WeightBiasAdapter)


def adapter_for(module: nn.Module) -> LayerAdapter | None:
    """The adapter of the most specific registered base class of `module`, if any."""
    for cls in type(module).__mro__:
        if cls in LAYERS:
            return LAYERS[cls]
    return None
