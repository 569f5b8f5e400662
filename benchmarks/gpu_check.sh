#!/usr/bin/env bash
# The GPU checks, in one short run for when a GPU machine is lent: the `cuda`-marked tests
# (device placement, CPU/GPU agreement, autocast, a training function and a fractional-GPU
# sweep), then the step-time benchmark on CUDA. Prints the card, then one summary line each.
#   bash benchmarks/gpu_check.sh            (from the repository root, after `make install`)
set -euo pipefail
PY=${PY:-.venv/bin/python}
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
print("card:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PYEOF
"$PY" -m pytest -q -m cuda -p no:cacheprovider tests/fishleg/test_cuda.py tests/tuning/test_cuda.py
"$PY" benchmarks/step_time.py --device cuda --steps 30 --rounds 3
