"""The example's test split, evaluated once, for a model already chosen and trained:
`python -m examples.charlm.evaluate OUTPUT` reads OUTPUT/config.yaml and OUTPUT/checkpoint.pt
(what `fishleg-tune train` wrote) and writes OUTPUT/test_metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from examples.charlm.train import build, evaluate
from tuning.run.config import load_run_config
from tuning.run.devices import resolve_device
from tuning.run.fit import CHECKPOINT_FILE, load_saved

__all__ = ["main"]


def main(output: Path) -> dict[str, float]:
    """Test loss (nats per character) over the whole test split; written beside the run."""
    config = load_run_config(output / "config.yaml")
    device = resolve_device(config.training.device)
    opts, model, (_train, _val, test) = build(config, config.training.seed)
    saved = load_saved(output / CHECKPOINT_FILE, device)
    model.load_state_dict(saved.state["model"])
    model.to(device)
    metrics = {"epoch": saved.epoch, "test_loss": evaluate(model, test, len(test), device)}
    (output / "test_metrics.json").write_text(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
