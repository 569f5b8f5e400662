"""Which torch device a run uses (`training.device`)."""

from __future__ import annotations

import torch

from tuning.errors import UserError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; a CUDA device this machine lacks is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise UserError(
                f"training.device: {name!r} but this machine has {count} CUDA device(s); "
                "use auto or cpu" + (f", or cuda:0..cuda:{count - 1}" if count else "") + "."
            )
    return device
