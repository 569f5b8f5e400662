"""Tests marked `cuda` need a CUDA GPU and are skipped without one."""

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh where one is lent)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
