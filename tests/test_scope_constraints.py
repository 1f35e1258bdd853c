"""Installs where users are: avatar-bridge with the Scope plugin's extras resolves under
Daydream Scope's plugin constraints (tools/scope-constraints.txt, made by
tools/scope_constraints.py from Scope's uv.lock and pyproject.toml)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("scope_constraints", ROOT / "tools" / "scope_constraints.py")
scope_constraints = importlib.util.module_from_spec(spec)
sys.modules["scope_constraints"] = scope_constraints
spec.loader.exec_module(scope_constraints)

LOCK = '''
version = 1
[[package]]
name = "daydream-scope"
version = "0.2.4"
source = { editable = "." }
dependencies = [{ name = "protobuf" }, { name = "Torch" }, { name = "huggingface-hub" }, { name = "not-locked" }]

[[package]]
name = "protobuf"
version = "6.33.5"

[[package]]
name = "torch"
version = "2.9.1+cu128"

[[package]]
name = "huggingface_hub"
version = "0.30.0"

[[package]]
name = "huggingface-hub"
version = "0.36.0"

[[package]]
name = "numpy"
version = "2.4.1"
'''


def test_constraints_are_built_as_scopes_plugin_manager_builds_them():
    # >=locked,<next major for direct deps of the editable root only; local builds (+cu128) and
    # unlocked names skipped; the last lock entry of a name wins; transitive numpy is not constrained
    assert scope_constraints.lock_constraints(LOCK) == ["huggingface-hub>=0.36.0,<1", "protobuf>=6.33.5,<7"]
    pyproject = '[project]\ndependencies = ["torch==2.9.1", "numpy>=1", "triton==3.5.1; sys_platform == \'linux\'"]\n'
    assert scope_constraints.pyproject_pins(pyproject) == ["torch==2.9.1", "triton==3.5.1; sys_platform == 'linux'"]


def test_the_committed_constraints_name_their_source_and_hold_scopes_pins():
    text = (ROOT / "tools" / "scope-constraints.txt").read_text()
    assert "github.com/daydreamlive/scope at commit " in text
    lines = scope_constraints._constraint_lines(ROOT / "tools" / "scope-constraints.txt")
    assert "protobuf>=6.33.5,<7" in lines  # the pin that ruled out mediapipe 0.10.21 (issue 10)
    assert scope_constraints._torch_pin(lines) == "2.9.1"


def _pypi_reachable() -> bool:
    """pip's index (``$PIP_INDEX_URL``, else PyPI) answers."""
    from urllib.request import urlopen

    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/")
    try:
        with urlopen(f"{index}/pip/", timeout=30) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.network
def test_the_scope_plugin_resolves_under_scopes_constraints():
    """pip's resolver, dry run, Scope's Python: fails with pip's reason when a pin of ours conflicts."""
    if not _pypi_reachable():
        if os.environ.get("AVATAR_BRIDGE_REQUIRE_PYPI"):
            pytest.fail("PyPI is unreachable, and this run (.ci/run) requires the Scope constraints check")
        pytest.skip("PyPI unreachable: the Scope constraints check needs it (python tools/scope_constraints.py check)")
    report = scope_constraints.check()
    versions = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in report["install"]}
    assert versions["avatar-bridge"] and versions["torch"].startswith("2.9.1")  # Scope's torch, held out as a stub
    assert int(versions["protobuf"].split(".")[0]) == 6 and int(versions["numpy"].split(".")[0]) == 2
    assert "mediapipe" not in versions and not any(name.startswith("nvidia-") for name in versions)
