"""The GPU check's CPU path, so it cannot rot between GPU loans: the wheel folder builds (for
this Python, as `make gpu-wheels` builds it for the GPU machine's), installs into a target
with `--no-index`, and benchmarks/gpu_check.sh runs against an interpreter that, like the GPU
machine's, has torch, PyYAML and pytest but not pydantic: `fishleg` imports pydantic from the
wheels, the cuda tests are collected and skipped, the step-time benchmark is skipped with its
reason, and the width table runs at two small widths on the CPU (SOAP and Shampoo from the wheels)."""

import json
import subprocess
import sys
import venv
from pathlib import Path

import torch

from tests.conftest import ROOT

# What the GPU machine's image has of what the check imports (its KINDS.md package list).
MACHINE_PACKAGES = [
    "torch", "torchgen", "functorch", "typing_extensions.py", "sympy", "mpmath", "networkx", "jinja2",
    "markupsafe", "filelock", "fsspec", "numpy", "numpy.libs", "yaml", "_yaml", "pytest", "_pytest",
    "pluggy", "iniconfig", "packaging", "pygments", "py.py", "pip",
]  # fmt: skip


def machine_like_python(tmp_path: Path) -> Path:
    """A venv that sees this one's torch and test tools, and not pydantic."""
    site = Path(torch.__file__).parents[1]
    bare = tmp_path / "machine-site"
    bare.mkdir()
    for name in MACHINE_PACKAGES:
        if (site / name).exists():
            (bare / name).symlink_to(site / name)
    env = tmp_path / "machine"
    venv.create(env)  # pip comes with the machine's packages above
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "machine.pth").write_text(f"{bare}\n")
    return python


def test_the_gpu_check_runs_from_the_wheels_alone_and_skips_what_needs_cuda(tmp_path):
    wheels = tmp_path / "whl"
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = subprocess.run(
        ["make", "-s", "gpu-wheels", f"WHEELS={wheels}", f"PYVER={pyver}"], cwd=ROOT, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-3000:]
    names = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert names == [
        "annotated_types", "pydantic", "pydantic_core", "pytorch_optimizer", "typing_extensions", "typing_inspection"
    ]  # fmt: skip
    assert sum(p.stat().st_size for p in wheels.glob("*.whl")) < 16 * 2**20  # far inside the 64 MiB carry

    python = machine_like_python(tmp_path)
    missing = subprocess.run([python, "-c", "import pydantic"], capture_output=True, text=True)
    assert missing.returncode != 0  # the machine-like interpreter has no pydantic of its own
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "PY": str(python), "WHEELS": str(wheels), "OUT": str(out)}
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["check"]: r for r in json.loads((out / "gpu_check.json").read_text())}
    assert results["card"]["pydantic_from"].startswith("/tmp/fishleg-site.")
    assert results["cuda_tests"]["exit"] == 0 and results["cuda_tests"]["skipped"] >= 19
    assert "passed" not in results["cuda_tests"] and "failed" not in results["cuda_tests"]
    assert results["step_time"] == {"check": "step_time", "skipped": "no CUDA device"}
    widths = results["width_scaling"]
    assert widths["device"] == "cpu" and [row["d"] for row in widths["widths"]] == [32, 64]
    assert set(widths["widths"][0]) == {"d", "adamw", "fishleg_learnt", "fishleg_kfac_only", "fishleg_identity",
                                        "soap", "shampoo", "muon"}  # fmt: skip
    arms = [arm for row in widths["widths"] for arm in row.values() if isinstance(arm, dict)]
    assert len(arms) == 14 and all(arm["ms"] > 0 and arm["state_mb"] > 0 for arm in arms)
    summary_lines = [line for line in done.stdout.splitlines() if line.startswith('{"check"')]
    assert [json.loads(line)["check"] for line in summary_lines] == ["card", "cuda_tests", "step_time", "width_scaling"]
