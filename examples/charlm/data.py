"""Text every Python installation has: the source files of standard-library modules, read
in a fixed order, as ASCII codes (vocabulary 128), split into contiguous train / validation
/ test stretches (the model never sees a test character while it is tuned)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["MODULES", "VOCAB", "CharWindows", "load_text", "split_text"]

VOCAB = 128
MODULES = (
    "argparse", "ast", "calendar", "collections", "csv", "dataclasses", "difflib", "email",
    "enum", "fractions", "functools", "gettext", "heapq", "inspect", "json", "logging",
    "pathlib", "pickle", "pprint", "random", "shutil", "statistics", "string", "tarfile",
    "textwrap", "threading", "typing", "unittest", "urllib", "zipfile",
)  # fmt: skip


def _source_files(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return []
    origin = Path(spec.origin)
    return sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]


def load_text(num_chars: int) -> Tensor:
    """The first `num_chars` characters of the modules' sources, as int64 codes (num_chars,)."""
    chunks: list[bytes] = []
    size = 0
    for name in MODULES:
        for path in _source_files(name):
            data = path.read_bytes()
            chunks.append(data)
            size += len(data)
            if size >= num_chars:
                break
        if size >= num_chars:
            break
    raw = b"".join(chunks)[:num_chars]
    if len(raw) < num_chars:
        raise ValueError(f"the standard library sources give {len(raw)} characters, fewer than {num_chars}")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long() % VOCAB


def split_text(codes: Tensor, val_fraction: float, test_fraction: float) -> tuple[Tensor, Tensor, Tensor]:
    """Contiguous (train, validation, test) stretches of `codes`, in that order."""
    n = len(codes)
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    return codes[: n - n_val - n_test], codes[n - n_val - n_test : n - n_test], codes[n - n_test :]


class CharWindows(Dataset):
    """Non-overlapping windows of `context` characters and, for each, the next character at
    every position: item i is (x (context,), y (context,)) with y[t] = x[t + 1]."""

    def __init__(self, codes: Tensor, context: int) -> None:
        self.codes = codes
        self.context = context

    def __len__(self) -> int:
        return (len(self.codes) - 1) // self.context

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        start = i * self.context
        window = self.codes[start : start + self.context + 1]
        return window[:-1], window[1:]
