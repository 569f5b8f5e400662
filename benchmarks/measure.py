"""What the speed benchmarks share: waiting for the device, timing a call, torch's FLOP counter
told about the in-place addmm its table lacks, FishLeg's blocks on contiguous rows (the ablation of
the aligned layout), and the summary JSON each ends with."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from fishleg.structures import base as structures_base

__all__ = ["contiguous_rows", "flop_counter", "report", "seconds_per_call", "sync"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    """Mean seconds of `fn` over `reps` calls, after one untimed call."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / reps


def _addmm_inplace_flops(self_shape: torch.Size, a_shape: torch.Size, b_shape: torch.Size, **_: object) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def flop_counter() -> FlopCounterMode:
    """torch's FlopCounterMode, silent, counting in-place addmm too (not in torch's own table)."""
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _addmm_inplace_flops})


@contextlib.contextmanager
def contiguous_rows() -> Iterator[None]:
    """FishLeg optimizers built inside keep their blocks on contiguous rows instead of the aligned
    ones `fishleg.structures.base.workspace` gives."""
    align_from = structures_base.ALIGN_FROM
    structures_base.ALIGN_FROM = math.inf
    try:
        yield
    finally:
        structures_base.ALIGN_FROM = align_from


def report(result: dict[str, Any], out: Path | None) -> None:
    """The summary as one JSON line, and into `out` (indented) if given."""
    print(json.dumps(result))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
