"""Q(λ) structures; importing this package registers the four built-in families."""

from fishleg.structures.base import STRUCTURES, QSpec, QStructure, build_structure, register_structure
from fishleg.structures.diag import DiagQ
from fishleg.structures.kron import KronQ
from fishleg.structures.kron_diag import KronDiagQ
from fishleg.structures.kron_sum import KronSumQ

__all__ = [
    "STRUCTURES",
    "DiagQ",
    "KronDiagQ",
    "KronQ",
    "KronSumQ",
    "QSpec",
    "QStructure",
    "build_structure",
    "register_structure",
]
