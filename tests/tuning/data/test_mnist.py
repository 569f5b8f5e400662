"""The MNIST idx reader and verified download, on small idx files the test writes."""

import gzip
import struct

import numpy as np
import pytest

from tuning.data import mnist
from tuning.data.download import md5sum
from tuning.errors import DatasetUnavailable


def write_idx(path, array):
    code = {np.uint8: 0x08}[array.dtype.type]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def small_mnist(folder, n=5):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, (n,), dtype=np.uint8),
        "test_images": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, (3,), dtype=np.uint8),
    }
    for key, (name, _) in mnist.FILES.items():
        write_idx(folder / name, arrays[key])
    return arrays


def test_reads_idx_files_in_place(tmp_path):
    arrays = small_mnist(tmp_path)
    (tmp_path / mnist.FILES["test_labels"][0]).rename(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz") as f:
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(f.read())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    for name in [mnist.FILES[k][0] for k in ("train_images", "train_labels", "test_images")]:
        with gzip.open(tmp_path / name) as f:
            (tmp_path / name.removesuffix(".gz")).write_bytes(f.read())
        (tmp_path / name).unlink()
    tx, ty, vx, vy = mnist.load_mnist(tmp_path, download=False)
    assert tx.shape == (5, 784) and vx.shape == (3, 784)
    np.testing.assert_allclose(tx.numpy() * 255, arrays["train_images"].reshape(5, -1), atol=1e-3)
    assert ty.tolist() == arrays["train_labels"].tolist()
    assert float(tx.max()) <= 1.0


def test_downloads_and_verifies_checksums(tmp_path, http_folder, monkeypatch):
    served, url = http_folder
    small_mnist(served)
    files = {k: (n, md5sum(served / n)) for k, (n, _) in mnist.FILES.items()}
    monkeypatch.setattr(mnist, "FILES", files)
    monkeypatch.setattr(mnist, "MIRRORS", [url])
    tx, _, vx, _ = mnist.load_mnist(tmp_path / "dl")
    assert tx.shape == (5, 784) and (tmp_path / "dl" / files["train_images"][0]).exists()


def test_bad_checksum_is_refused(tmp_path, http_folder, monkeypatch):
    served, url = http_folder
    small_mnist(served)
    monkeypatch.setattr(mnist, "MIRRORS", [url])  # the real MD5s will not match these files
    with pytest.raises(DatasetUnavailable, match="checksum mismatch"):
        mnist.load_mnist(tmp_path / "dl")
    assert not list((tmp_path / "dl").iterdir())  # neither the file nor a partial download


def test_missing_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetUnavailable, match=str(tmp_path)):
        mnist.load_mnist(tmp_path, download=False)


def test_mnist5k_subset_is_real_and_fixed():
    tx, _, vx, _ = mnist.load_mnist5k()
    tx2, _, _, _ = mnist.load_mnist5k()
    assert tx.shape == (4000, 784) and vx.shape == (1000, 784)
    assert float(tx.max()) == 1.0 and (tx == tx2).all()
