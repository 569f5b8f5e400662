"""The CIFAR-10 reader on a tiny archive in the real python-pickle format, written here."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tuning.data import cifar10
from tuning.data.download import md5sum
from tuning.errors import DatasetUnavailable
from tuning.workloads.cifar10 import random_crop_flip


def batch_bytes(n, seed):
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": rng.integers(0, 10, n).tolist(),
        b"batch_label": b"x",
        b"filenames": [b"f"] * n,
    }
    return pickle.dumps(batch, protocol=2), batch


def write_archive(path, n=4):
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(cifar10.TRAIN + [cifar10.TEST]):
            raw, batch = batch_bytes(n, i)
            batches[name] = batch
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return batches


def test_reads_the_archive_through_the_real_download_path(tmp_path, http_folder, monkeypatch):
    served, url = http_folder
    batches = write_archive(served / cifar10.ARCHIVE)
    monkeypatch.setattr(cifar10, "URL", url + cifar10.ARCHIVE)
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5sum(served / cifar10.ARCHIVE))
    tx, ty, vx, vy = cifar10.load_cifar10(tmp_path)
    assert tx.shape == (20, 3, 32, 32) and vx.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][b"data"][0].reshape(3, 32, 32)
    np.testing.assert_allclose(tx[0].numpy() * 255, first, atol=1e-3)
    assert ty[:4].tolist() == batches["data_batch_1"][b"labels"]
    assert vy.tolist() == batches["test_batch"][b"labels"]


def test_extracted_folder_is_used_without_archive(tmp_path):
    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    for i, name in enumerate(cifar10.TRAIN + [cifar10.TEST]):
        (folder / name).write_bytes(batch_bytes(2, i)[0])
    tx, _, _, _ = cifar10.load_cifar10(tmp_path, download=False)
    assert tx.shape == (10, 3, 32, 32)


def test_pickles_that_build_other_objects_are_refused():
    evil = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": print})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cifar10.read_batch(evil)


def test_missing_offline_names_the_folder(tmp_path):
    with pytest.raises(DatasetUnavailable, match=f"not in {tmp_path}"):
        cifar10.load_cifar10(tmp_path, download=False)


def test_augmentation_crops_and_flips():
    """Each image is its own, flipped or not, in a window of its zero-padded copy; over 64
    images both flips and several windows occur (the identity would fail both)."""
    x = torch.arange(64 * 1 * 4 * 4, dtype=torch.float32).reshape(64, 1, 4, 4)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape
    flips, windows = [], set()
    for i in range(64):
        found = [
            (flip, dy, dx)
            for flip in (False, True)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], F.pad(x[i].flip(-1) if flip else x[i], (2, 2, 2, 2))[:, dy : dy + 4, dx : dx + 4])
        ]
        assert found, f"image {i} is not a crop of its padded self"
        flips.append(found[0][0])
        windows.add(found[0][1:])
    assert 8 < sum(flips) < 56 and len(windows) > 5
