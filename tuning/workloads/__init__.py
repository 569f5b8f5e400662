"""Workloads by name; importing this package registers the built-ins."""

from tuning.workloads import cifar10, curves, digits, mnist
from tuning.workloads.base import WORKLOADS, Workload, build_workload, register_workload, validate_workload

__all__ = [
    "WORKLOADS",
    "Workload",
    "build_workload",
    "cifar10",
    "curves",
    "digits",
    "mnist",
    "register_workload",
    "validate_workload",
]
