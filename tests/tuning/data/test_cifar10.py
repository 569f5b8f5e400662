"""The CIFAR-10 reader on a tiny archive in the real python-pickle format, written here."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

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
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, g, padding=0)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    padded = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    assert padded.shape == x.shape
