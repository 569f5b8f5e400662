"""Where the aux step's probe u comes from (`u_sampling`): the aux loss A(λ; u) fits Q along u,
so the choice is which directions Q is fitted in. A registry like the other parts: a new
scheme is one class and one `PROBES.register` line."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from fishleg.blocks import Block, BlockBuffer
from fishleg.registry import Registry

__all__ = ["PROBES", "GaussianProbes", "GradientProbes", "Probes"]

Probed = tuple[Sequence[Block], list[Tensor], list[Tensor] | None]


class Probes(ABC):
    """Probes for the λ updates. generator: the optimizer's own (checkpointed with it)."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    @abstractmethod
    def in_step(self, stepped: Sequence[Block], every: Sequence[Block], *, reuse_qg: bool) -> Probed:
        """(blocks, probes u, Q·u if known) for the λ update of a parameter step: `stepped` are
        the blocks with gradients, `every` all of them; with `reuse_qg` their `qg` holds Q·g."""

    @abstractmethod
    def default(self, every: Sequence[Block]) -> list[Tensor]:
        """One probe per block for `update_aux(inputs)` called without u."""


PROBES: Registry[str, type[Probes]] = Registry("u_sampling")


@PROBES.register("gradient")
class GradientProbes(Probes):
    """u = the step's gradient (the reference's default): Q is fitted along the directions it is
    applied to, and the aux step reuses the step's Q·g."""

    def in_step(self, stepped: Sequence[Block], every: Sequence[Block], *, reuse_qg: bool) -> Probed:
        """The stepped blocks' gradients (and their Q·g)."""
        return stepped, [b.grad for b in stepped], [b.qg for b in stepped] if reuse_qg else None

    def default(self, every: Sequence[Block]) -> list[Tensor]:
        """The parameters' current gradients, joined per block."""
        if any(p.grad is None for b in every for p in b.params):
            raise ValueError("update_aux: no gradients yet; call backward() first or pass u")
        return [b.join([p.grad for p in b.params]) for b in every]


@PROBES.register("gaussian")
class GaussianProbes(Probes):
    """u ~ N(0, I) on every block: Q is fitted in every direction, at one more Q·u per aux step."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__(generator)
        self.probe = BlockBuffer()

    def in_step(self, stepped: Sequence[Block], every: Sequence[Block], *, reuse_qg: bool) -> Probed:
        """Fresh probes on every block."""
        return every, self.default(every), None

    def default(self, every: Sequence[Block]) -> list[Tensor]:
        """Fresh probes, drawn into each block's buffer."""
        return [self.probe.of(b).normal_(generator=self.generator) for b in every]
