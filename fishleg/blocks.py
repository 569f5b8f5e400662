"""Blocks: the parameters that share one Q(λ) block, with the buffers their gradient and Q·g
live in, the parts' own per-block workspaces, and the small reductions the parts share."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from fishleg.curvature.kfac import Layer
from fishleg.layers import adapter_for
from fishleg.structures import QSpec, QStructure, build_structure
from fishleg.structures.base import workspace

__all__ = ["Block", "BlockBuffer", "build_blocks", "dot", "global_norm"]


def _block_tensor(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """A zeroed block-shaped tensor; a matrix's rows start aligned (`workspace`), as Q·g's
    products read and write it."""
    if len(shape) != 2:
        return torch.zeros(shape, device=device)
    return workspace(*shape, device).zero_()


def _like(block_tensor: Tensor) -> Tensor:
    """An uninitialised tensor laid out as a block's own (`torch.empty_like` would make a
    strided one contiguous)."""
    return torch.empty_strided(block_tensor.shape, block_tensor.stride(), device=block_tensor.device)


@dataclass(eq=False)
class Block:
    """Parameters that share one Q(λ) block, with preallocated gradient and Q·g buffers and
    their views in the parameters' shapes."""

    names: list[str]
    params: list[nn.Parameter]
    structure: QStructure
    split: Callable[[Tensor], list[Tensor]]
    layer: Layer | None = None
    grad: Tensor = field(init=False)
    qg: Tensor = field(init=False)
    grad_views: list[Tensor] = field(init=False)
    qg_views: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        device = self.params[0].device
        self.grad = _block_tensor(self.structure.shape, device)
        self.qg = _block_tensor(self.structure.shape, device)
        self.grad_views = self.split(self.grad)
        self.qg_views = self.split(self.qg)

    def join(self, tensors: Sequence[Tensor]) -> Tensor:
        """Per-parameter tensors → one new block tensor (float32)."""
        out = _like(self.grad)
        torch._foreach_copy_(self.split(out), list(tensors))
        return out


class BlockBuffer:
    """A part's own workspace: one tensor per block in the block's shape (float32, on its
    device), made on first use, with its views in the parameters' shapes. The parts that need
    scratch space (the aux step's residual and probes, a step's δ for adaptive damping) each
    hold theirs, so a Block holds only what every part reads: its gradient and Q·g."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[Tensor, list[Tensor]]] = {}

    def _entry(self, block: Block) -> tuple[Tensor, list[Tensor]]:
        entry = self._made.get(id(block))
        if entry is None:
            tensor = _like(block.grad)
            entry = self._made[id(block)] = (tensor, block.split(tensor))
        return entry

    def of(self, block: Block) -> Tensor:
        """The block's tensor."""
        return self._entry(block)[0]

    def views(self, block: Block) -> list[Tensor]:
        """Views of the block's tensor in its parameters' shapes."""
        return self._entry(block)[1]


def _identity_split(t: Tensor) -> list[Tensor]:
    return [t]


def build_blocks(
    model: nn.Module,
    q_structure: str,
    spec: QSpec,
    device: torch.device,
    exclude: Sequence[nn.Parameter] = (),
) -> list[Block]:
    """One block per registered layer (structure `q_structure` on [W | b]); a diagonal block
    for every other trainable parameter not in `exclude` (the partner's). Each structure
    starts as `spec` says (its scale, rank and the generator of random initial factors)."""
    names = {id(p): n for n, p in model.named_parameters()}
    claimed = {id(p) for p in exclude}
    blocks: list[Block] = []
    for module in model.modules():
        adapter = adapter_for(module)
        if adapter is None:
            continue
        params = adapter.params(module)
        if not all(p.requires_grad for p in params) or any(id(p) in claimed for p in params):
            continue
        structure = build_structure(q_structure, adapter.block_shape(module), spec, device)
        split = functools.partial(adapter.split, module)
        blocks.append(Block([names[id(p)] for p in params], params, structure, split, (module, adapter)))
        claimed.update(id(p) for p in params)
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in claimed:
            structure = build_structure("diag", tuple(p.shape), spec, device)
            blocks.append(Block([name], [p], structure, _identity_split))
    return blocks


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """‖·‖ of the tensors as one vector (a 0-d tensor)."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """⟨a, b⟩ with a and b each read as one vector (a 0-d tensor)."""
    return torch.stack([torch.vdot(x.flatten(), y.flatten()) for x, y in zip(a, b)]).sum()
