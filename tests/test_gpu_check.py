"""scripts/gpu-check.sh in the GPU machine's shape, on the CPU (issue 20).

The lent GPU machine's ``python3`` is itself a virtual environment holding torch, numpy and
OpenCV; diffusers and the project's other dependencies travel as wheels (scripts/gpu-wheels.sh)
and are installed with ``pip --no-index``. A venv made from such a python with
``--system-site-packages`` sees only the *base* interpreter's packages, so torch, numpy and cv2
vanished and the first GPU run died before printing a number. This test builds that shape here —
an outer venv with torch (the on-disk torch==2.13.0 CPU build), numpy and opencv-python-headless,
the wheels made by scripts/gpu-wheels.sh for this python, no index — and requires
``gpu-check.sh --cpu`` to print every bench row and to write its files to ``$OUT``.

Slow (a venv with torch, a wheel download): about 2-4 minutes. Needs PyPI for the wheels:
skipped when unreachable, unless AVATAR_BRIDGE_REQUIRE_PYPI=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_scope_constraints import _pypi_reachable

ROOT = Path(__file__).resolve().parent.parent
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"
#: the script under test (another path only to check this test against an older script)
SCRIPT = Path(os.environ.get("GPU_CHECK_SCRIPT", ROOT / "scripts" / "gpu-check.sh"))


def _sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def gpu_box(tmp_path_factory):
    """(outer python, wheels folder): an outer venv like the GPU machine's python3, and the carried wheels."""
    if not _pypi_reachable():
        if os.environ.get("AVATAR_BRIDGE_REQUIRE_PYPI"):
            pytest.fail("PyPI is unreachable, and this run requires the GPU-check test")
        pytest.skip("PyPI unreachable: scripts/gpu-wheels.sh needs it")
    base = tmp_path_factory.mktemp("gpu-box")
    outer = base / "outer"
    made = _sh([sys.executable, "-m", "venv", str(outer)])
    if made.returncode != 0:
        pytest.skip(f"cannot make a venv here: {made.stderr.strip().splitlines()[-1:]}")
    py = str(outer / "bin" / "python")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # torch first (the CPU build already on disk), then what the GPU machine has preinstalled
    for pkgs in (["torch==2.13.0"], ["numpy", "opencv-python-headless"]):
        got = _sh([py, "-m", "pip", "install", "-q", *pkgs], env=env)
        if got.returncode != 0:
            pytest.skip(f"cannot install {pkgs} into the outer venv: {got.stderr.strip().splitlines()[-1:]}")
    wheels = base / "wheels"
    made = _sh(["bash", str(ROOT / "scripts" / "gpu-wheels.sh"), str(wheels)],
               env={**env, "GPU_WHEELS_PYTHON": PYVER, "PYTHON": sys.executable})
    if made.returncode != 0 or not list(wheels.glob("*.whl")):
        pytest.skip(f"scripts/gpu-wheels.sh could not build the wheels: {made.stderr.strip().splitlines()[-1:]}")
    return py, wheels, base


@pytest.mark.slow
@pytest.mark.network
def test_gpu_check_runs_every_row_when_python_is_itself_a_venv(gpu_box):
    """gpu-check.sh --cpu with the outer venv's python and only the carried wheels prints all rows."""
    py, wheels, base = gpu_box
    # the outer venv really is the machine's shape: torch/numpy/cv2 in it, not in its base interpreter
    assert _sh([py, "-c", "import sys; assert sys.prefix != sys.base_prefix; import torch, numpy, cv2"]).returncode == 0
    assert _sh([py, "-c", "import diffusers"]).returncode != 0  # diffusers must come from the wheels
    out = base / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update({"PYTHON": py, "WHEELS": str(wheels), "GPU_CHECK_VENV": str(base / "inner"), "OUT": str(out),
                "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(base)})
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sysconfig.get_path("scripts")))
    run = _sh(["bash", str(SCRIPT), "--cpu"], env=env, cwd=base, timeout=1800)
    assert run.returncode == 0, f"gpu-check.sh --cpu failed:\n{run.stderr[-4000:]}"
    rows = json.loads((out / "bench.json").read_text()) + json.loads((out / "compile.json").read_text())
    seen = {(r["steps"], r["controlnet"], r["requested_acceleration"]) for r in rows}
    expected = {(s, cn, a) for s in (1, 2) for cn in (True, False) for a in _accelerations()}
    assert seen == expected, f"missing rows: {sorted(expected - seen)}"
    assert all(r["output_finite"] and r["fps_diffusion"] > 0 for r in rows)
    levers = json.loads((out / "levers.json").read_text())
    assert [r["lever"] for r in levers] == ["all-on", "cudnn-benchmark-off", "spin-wait", "nchw", "no-pose", "no-pose-cn-graph"]
    assert "Name" in (out / "profile.txt").read_text()  # the profiler's table of the 1-step + ControlNet row
    versions = (out / "versions.txt").read_text()
    assert "torch 2.13.0" in versions and "diffusers==" in versions
    assert (out / "nvidia-smi.txt").exists()
    # the box's own packages were not shadowed: torch stayed the outer venv's
    inner_torch = _sh([str(base / "inner" / "bin" / "python"), "-c", "import torch; print(torch.__file__)"])
    assert str(base / "outer") in inner_torch.stdout


def _accelerations() -> list[str]:
    """The acceleration rows of gpu-check.sh's grid and compile runs (every --acceleration list it names)."""
    text = (ROOT / "scripts" / "gpu-check.sh").read_text()
    found: list[str] = []
    for part in text.split("--acceleration ")[1:]:
        found += [a for a in part.split()[0].split(",") if a not in found]
    return found
