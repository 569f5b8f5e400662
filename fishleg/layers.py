"""Module-type adapters: how a layer's parameters form the block U on which Q(λ) acts.

A registered layer (Linear, Conv*) gets the chosen `q_structure` on U = [W | b] of shape
(out, in·k + 1); every other parameter (norm layers, embeddings, anything unknown) is its own
block with a diagonal Q.  Register an adapter for your own module type with
`register_layer(MyModule)(WeightBiasAdapter)` or a subclass of `LayerAdapter`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn
from typing_extensions import override

from fishleg.registry import Registry

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

    @override
    def params(self, module: nn.Module) -> list[nn.Parameter]:
        return [p for p in (module.weight, getattr(module, "bias", None)) if p is not None]

    @override
    def block_shape(self, module: nn.Module) -> tuple[int, int]:
        weight = module.weight
        has_bias = getattr(module, "bias", None) is not None
        return weight.shape[0], weight[0].numel() + int(has_bias)

    @override
    def split(self, module: nn.Module, block: Tensor) -> list[Tensor]:
        weight = module.weight
        cols = weight[0].numel()
        views = [block[:, :cols].view(weight.shape)]
        if getattr(module, "bias", None) is not None:
            views.append(block[:, cols])
        return views


LAYERS: Registry[type[nn.Module], type[LayerAdapter]] = Registry("layer type")
register_layer = LAYERS.register
"""Class decorator: `@register_layer(MyModule, ...)` on a LayerAdapter subclass gives these
module types (and their subclasses) the chosen q_structure."""

register_layer(nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)(WeightBiasAdapter)


def adapter_for(module: nn.Module) -> LayerAdapter | None:
    """The adapter of the most specific registered base class of `module`, if any."""
    for cls in type(module).__mro__:
        adapter = LAYERS.get(cls)
        if adapter is not None:
            return adapter()
    return None
