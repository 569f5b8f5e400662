"""scikit-learn's digits (shipped with the package, no download) as a torch dataset, for the
examples that show FishLeg in other training loops."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

__all__ = ["digits"]


def digits() -> TensorDataset:
    """Pixels scaled to [0, 1] (1797, 64) and labels (1797,)."""
    bunch = load_digits()
    return TensorDataset(torch.tensor(bunch.data, dtype=torch.float32) / 16, torch.tensor(bunch.target))
