"""Module-type adapters: how a layer's parameters form the block U on which Q(λ) acts.

A registered layer (Linear, Conv*) gets the chosen `q_structure` on U = [W | b] of shape
(out, in·k + 1); every other parameter (norm layers, embeddings, anything unknown) is its own
block with a diagonal Q.  Register an adapter for your own module type with
`register_layer(MyModule)(WeightBiasAdapter)` or a subclass of `LayerAdapter`.

An adapter may also say what a layer's per-example gradient is made of, U's gradient being
Σ_rows g āᵀ over the rows of its output gradients g and its (bias-augmented) inputs ā: that
is what K-FAC's Kronecker factors are estimated from (`q_init="kfac"`). Linear and Conv2d
say it; a layer whose adapter does not keeps Q = init_scale·I at the start.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from fishleg.registry import Registry

__all__ = [
    "LAYERS",
    "Conv2dAdapter",
    "LayerAdapter",
    "LinearAdapter",
    "WeightBiasAdapter",
    "adapter_for",
    "register_layer",
]


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

    def input_rows(self, module: nn.Module, inputs: Tensor) -> Tensor | None:
        """The layer's input as rows ā that U's columns multiply, (M, cols), or None if this
        adapter cannot say (then K-FAC initialisation leaves the block alone)."""
        return None

    def output_rows(self, module: nn.Module, grad_output: Tensor) -> Tensor | None:
        """Gradients at the layer's output as rows g matching `input_rows`, (M, rows)."""
        return None


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


def _with_bias_column(module: nn.Module, rows: Tensor) -> Tensor:
    """rows (M, k) → (M, k + 1) with a column of ones if the module has a bias."""
    if getattr(module, "bias", None) is None:
        return rows
    return torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)


class LinearAdapter(WeightBiasAdapter):
    """nn.Linear: every leading position of the input (batch, sequence, ...) is one row."""

    @override
    def input_rows(self, module: nn.Module, inputs: Tensor) -> Tensor:
        return _with_bias_column(module, inputs.reshape(-1, inputs.shape[-1]))

    @override
    def output_rows(self, module: nn.Module, grad_output: Tensor) -> Tensor:
        return grad_output.reshape(-1, grad_output.shape[-1])


class Conv2dAdapter(WeightBiasAdapter):
    """nn.Conv2d: every output pixel is one row, its input the unfolded patch. Grouped
    convolutions and non-zero padding modes say nothing (their patches are not U's columns)."""

    @staticmethod
    def _supported(module: nn.Conv2d) -> bool:
        return module.groups == 1 and module.padding_mode == "zeros" and module.padding != "same"

    @override
    def input_rows(self, module: nn.Module, inputs: Tensor) -> Tensor | None:
        if not self._supported(module):
            return None
        padding = 0 if module.padding == "valid" else module.padding
        patches = F.unfold(inputs, module.kernel_size, module.dilation, padding, module.stride)  # (B, C·k·k, L)
        return _with_bias_column(module, patches.transpose(1, 2).reshape(-1, patches.shape[1]))

    @override
    def output_rows(self, module: nn.Module, grad_output: Tensor) -> Tensor | None:
        if not self._supported(module):
            return None
        return grad_output.movedim(1, -1).reshape(-1, grad_output.shape[1])


LAYERS: Registry[type[nn.Module], type[LayerAdapter]] = Registry("layer type")
register_layer = LAYERS.register
"""Class decorator: `@register_layer(MyModule, ...)` on a LayerAdapter subclass gives these
module types (and their subclasses) the chosen q_structure."""

register_layer(nn.Linear)(LinearAdapter)
register_layer(nn.Conv2d)(Conv2dAdapter)
register_layer(nn.Conv1d, nn.Conv3d)(WeightBiasAdapter)


def adapter_for(module: nn.Module) -> LayerAdapter | None:
    """The adapter of the most specific registered base class of `module`, if any."""
    for cls in type(module).__mro__:
        adapter = LAYERS.get(cls)
        if adapter is not None:
            return adapter()
    return None
