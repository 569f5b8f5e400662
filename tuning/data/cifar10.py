"""CIFAR-10 in its python-pickle format, read with an unpickler that builds numpy arrays only."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tuning.data.download import fetch, probe
from tuning.errors import DatasetUnavailable

__all__ = ["ARCHIVE", "ARCHIVE_MD5", "URL", "check_available", "load_cifar10", "read_batch"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles made by Python 3 store bytes
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")


def read_batch(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch → (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(batch[b"labels"], dtype=np.int64)


def _extracted(data_dir: Path) -> bool:
    return all((data_dir / FOLDER / n).exists() for n in TRAIN + [TEST])


def check_available(data_dir: Path, download: bool) -> None:
    """Raise DatasetUnavailable now if `load_cifar10` could neither read nor download the data."""
    if _extracted(data_dir) or (data_dir / ARCHIVE).exists():
        return
    if not download:
        raise DatasetUnavailable(
            f"CIFAR-10 is not in {data_dir}: put {ARCHIVE} (MD5 {ARCHIVE_MD5}) or its extracted "
            f"{FOLDER}/ folder there, or set download: true."
        )
    probe([URL], data_dir / ARCHIVE, ARCHIVE_MD5, "CIFAR-10")


def _read_files(data_dir: Path, download: bool) -> dict[str, bytes]:
    folder = data_dir / FOLDER
    names = TRAIN + [TEST]
    if _extracted(data_dir):
        return {n: (folder / n).read_bytes() for n in names}
    archive = data_dir / ARCHIVE
    check_available(data_dir, download)
    fetch([URL], archive, ARCHIVE_MD5, "CIFAR-10")
    with tarfile.open(archive, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        missing = [n for n in names if n not in members]
        if missing:
            raise DatasetUnavailable(f"{archive} lacks {missing}; it is not the CIFAR-10 python archive.")
        return {n: tar.extractfile(members[n]).read() for n in names}


def load_cifar10(data_dir: Path, download: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images (50000, 3, 32, 32) float in [0, 1], labels, test images, labels)."""
    files = _read_files(data_dir, download)
    train = [read_batch(files[n]) for n in TRAIN]
    test_x, test_y = read_batch(files[TEST])

    def images(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0)

    return (
        images(np.concatenate([x for x, _ in train])),
        torch.from_numpy(np.concatenate([y for _, y in train])),
        images(test_x),
        torch.from_numpy(test_y),
    )
