"""fishleg-tune: Ray Tune + Optuna + MLflow sweeps for FishLeg.

`tuning.search`, `tuning.resume` and `tuning.train` are the Python API (`tuning.api`),
imported on first use so that `import tuning.run.config` stays light."""

from __future__ import annotations

from typing import Any

__all__ = ["resume", "search", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tuning import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
