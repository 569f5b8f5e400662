"""fishleg is a standalone library: importing it loads nothing of the tuning toolkit."""

import subprocess
import sys


def test_import_fishleg_loads_no_tuning_ray_optuna_or_mlflow():
    code = (
        "import sys, fishleg; fishleg.FishLeg; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tuning', 'ray', 'optuna', 'mlflow', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
