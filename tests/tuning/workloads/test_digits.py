"""The digits workload reads scikit-learn's shipped file directly: same rows as load_digits."""

import importlib.util
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

from tuning.workloads import digits


def test_shipped_file_gives_load_digits_rows():
    pixels, labels = digits.load_digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)


def test_falls_back_to_load_digits_when_the_file_is_elsewhere(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    pixels, labels = digits.load_digits_arrays()
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)


def test_building_the_workload_does_not_import_sklearn():
    code = (
        "import sys; from tuning.workloads import build_workload; from tuning.run.config import WorkloadConfig;"
        "build_workload(WorkloadConfig(name='digits_classifier'), 0, 'test');"
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
