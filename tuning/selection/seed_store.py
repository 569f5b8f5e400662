"""Seed re-runs kept on disk as each one ends, so a comparison or a robust choice cut short
(Ctrl-C, a crash) and started again trains none of them twice.

A run is filed under the SHA-256 of its whole run config (sampled params and seed included):
any change to the workload, budget or optimizer is another run. Its curve is written last and
atomically, so a run whose file is there is whole."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from tuning.records.files import atomic_path, write_atomically

__all__ = ["KeptRun", "SeedStore"]

KeptRun = tuple[list[dict[str, float]], bool, dict[str, torch.Tensor] | None]
"""(per-epoch metrics, diverged, final model weights or None)."""


class SeedStore:
    """The seed re-runs finished under `folder`, one JSON curve and one weights file per run;
    `read`: how many were read back instead of trained."""

    FOLDER = "seed_runs"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.read = 0

    @classmethod
    def under(cls, path: Path) -> SeedStore:
        """The store of a sweep's or a comparison's folder."""
        return cls(path / cls.FOLDER)

    @staticmethod
    def key(config: dict[str, Any]) -> str:
        """The run's name: the hash of its config, written canonically."""
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, config: dict[str, Any]) -> KeptRun | None:
        """The finished run of `config`, or None if it never finished here."""
        curve_file = self.folder / f"{self.key(config)}.json"
        if not curve_file.exists():
            return None
        kept = json.loads(curve_file.read_text())
        weights = None
        if kept["weights"]:
            weights = torch.load(curve_file.with_suffix(".pt"), map_location="cpu", weights_only=True)
        self.read += 1
        return kept["curve"], kept["diverged"], weights

    def put(self, config: dict[str, Any], run: KeptRun) -> None:
        """File a finished run: its weights first, then its curve (the mark that it is whole)."""
        curve, diverged, weights = run
        self.folder.mkdir(parents=True, exist_ok=True)
        curve_file = self.folder / f"{self.key(config)}.json"
        if weights is not None:
            with atomic_path(curve_file.with_suffix(".pt")) as tmp:
                torch.save(weights, tmp)
        kept = {"config": config, "curve": curve, "diverged": diverged, "weights": weights is not None}
        write_atomically(curve_file, json.dumps(kept, default=str))
