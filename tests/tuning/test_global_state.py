"""Library code leaves process-wide state alone: the global RNG, warning filters, Optuna's
log level and matplotlib's backend are the caller's."""

import subprocess
import sys

import torch

from tuning.run.config import WorkloadConfig
from tuning.workloads import build_workload


def test_building_a_workload_seeds_its_model_without_touching_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_workload(WorkloadConfig(name="digits_classifier"), seed=5)
    assert torch.equal(torch.rand(3), expected)
    b = build_workload(WorkloadConfig(name="digits_classifier"), seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))


def test_importing_the_toolkit_sets_no_warning_filter_log_level_or_backend():
    code = (
        "import warnings, matplotlib; matplotlib.use('svg'); import optuna;"
        "level = optuna.logging.get_verbosity();"
        "import tuning.sweep.space, tuning.report, tuning.compare, tuning.driver;"
        "ours = [f for f in warnings.filters if f[2] is optuna.exceptions.ExperimentalWarning];"
        "print(not ours, optuna.logging.get_verbosity() == level, matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "svg"]
