#!/usr/bin/env bash
# The GPU checks for the lent GPU machine as it is: its own python3 and torch, nothing
# installable from a registry. The project's missing pure-Python needs travel as wheels:
#   make gpu-wheels                     (here: downloads them into .whl/, for Python 3.12)
#   bash benchmarks/gpu_check.sh        (there, with .whl carried; from the repository root)
# The wheels go into a temporary target, first on PYTHONPATH; then benchmarks/gpu_check.py
# prints one JSON line per check and writes them all to $OUT/gpu_check.json (OUT defaults
# to gpu-check/). On a machine without CUDA the GPU parts are skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-gpu-check}
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    SITE=$(mktemp -d /tmp/fishleg-site.XXXXXX)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
"$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" "$@"
