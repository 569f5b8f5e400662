"""What the learnt Q adds, everything else equal: a chosen FishLeg config re-trained on the same
fresh seeds with only Q changed.

A separately tuned control (`learn_q: false` in its own sweep) answers another question: its
chosen lr, damping or partner may differ from FishLeg's, so its difference is not Q's alone.
Here the chosen config is kept as it is and only the aux loop is switched off: Q held where
`q_init` puts it (K-FAC's estimate, made again every `kfac_every` steps, with `q_init: kfac`),
and, for a K-FAC start, Q at init_scale·I as well (grafted momentum SGD with a graft)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fishleg.config import FishLegConfig
from tuning.selection.intervals import Difference, difference
from tuning.selection.robust import SeedRuns, retrain_for
from tuning.selection.seed_store import SeedStore
from tuning.sweep.spec import SweepSpec

__all__ = ["Ablation", "ablate", "ablations"]

_AUX_LOOP_ONLY = ("warmup_aux_steps", "dense_aux_steps", "aux_lr_start")  # refused once the loop is off


@dataclass
class Ablation:
    """The chosen config with only Q changed (`changes`, dotted keys), its seed runs, and the
    chosen config's difference from it (`learnt_q`: what the learnt Q adds, with its interval)."""

    name: str
    changes: dict[str, Any]
    runs: SeedRuns
    learnt_q: Difference

    def to_dict(self, metric: str) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "changes": self.changes,
            "finals": self.runs.finals(metric),
            "mean": self.runs.mean(metric),
            "std": self.runs.std(metric),
            "learnt_q_minus_it": self.learnt_q.to_dict(),
        }


def ablations(spec: SweepSpec, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Q-only changes of a chosen config (name → dotted keys to set); none unless it is a
    FishLeg config whose aux loop learns Q."""
    config = spec.config_for(params).optimizer
    if not isinstance(config, FishLegConfig) or not config.learn_q:
        return {}
    fields = FishLegConfig.model_fields
    held = {f"optimizer.{name}": fields[name].default for name in _AUX_LOOP_ONLY}
    held["optimizer.learn_q"] = False
    if config.q_init != "kfac":
        return {"Q held at init_scale·I (learn_q false)": held}
    identity = {**held, "optimizer.q_init": "identity", "optimizer.kfac_every": fields["kfac_every"].default}
    return {"K-FAC only (learn_q false)": held, "Q at init_scale·I (learn_q false, q_init identity)": identity}


def ablate(spec: SweepSpec, chosen: SeedRuns, metric: str, mode: str, store: SeedStore) -> list[Ablation]:
    """Re-train each Q-only change of the chosen config on its seeds, as concurrent Ray tasks
    (those `store` holds are read back)."""
    changes = ablations(spec, chosen.params)
    runs = retrain_for(spec, [{**chosen.params, **change} for change in changes.values()], chosen.seeds, store)
    return [
        Ablation(name, change, run, difference(chosen.finals(metric), run.finals(metric), mode))
        for (name, change), run in zip(changes.items(), runs)
    ]
