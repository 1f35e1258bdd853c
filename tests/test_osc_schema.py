"""``avatar-bridge osc-schema --json`` matches the stage configs; the README table is generated from it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.stages.registry import all_stages

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def schema_json() -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "bridge", "osc-schema", "--json"], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def test_json_lists_every_parameter_of_every_registered_stage(schema_json):
    by_address = {e["address"]: e for e in schema_json}
    assert len(by_address) == len(schema_json), "an address appears twice"
    expected = set()
    for stage in all_stages():
        config = stage.get_config_class()
        # derive the truth independently, from pydantic's own JSON schema of the config
        props = config.model_json_schema()["properties"]
        for name, prop in props.items():
            address = f"/bridge/{config.osc_name}/{name}"
            expected.add(address)
            entry = by_address.get(address)
            assert entry is not None, f"{address} missing from osc-schema --json"
            assert set(entry) == {"address", "type", "min", "max", "choices", "default", "load_time", "description"}
            assert entry["load_time"] == config.is_load_param(name)
            assert entry["default"] == prop.get("default")
            assert entry["description"] == prop.get("description", "")
            assert entry["min"] == prop.get("minimum", prop.get("exclusiveMinimum"))
            assert entry["max"] == prop.get("maximum", prop.get("exclusiveMaximum"))
            if "enum" in prop:
                assert entry["choices"] == prop["enum"] and entry["type"] == "s"
            else:
                tag = {"number": "f", "integer": "i", "boolean": "T", "string": "s"}.get(prop.get("type"))
                if tag is not None:
                    assert entry["type"] == tag, address
    runtime = {a for a in expected if not by_address[a]["load_time"]}
    assert runtime, "no runtime parameter at all"
    controls = {"/bridge/preset", "/bridge/bypass", "/bridge/reload", "/bridge/ping"}
    assert set(by_address) == expected | controls, "osc-schema lists addresses no stage has"
    assert by_address["/bridge/alpha/threshold"] == {
        "address": "/bridge/alpha/threshold", "type": "f", "min": 0.0, "max": 1.0, "choices": None,
        "default": 0.5, "load_time": False, "description": "Person probability that maps to alpha 0.5."}
    assert by_address["/bridge/alpha/model"]["load_time"] is True


@pytest.fixture(scope="module")
def gen():
    """tools/gen_readme_osc.py as a module, its table computed once (``avatar-bridge osc-schema``)."""
    spec = importlib.util.spec_from_file_location("gen_readme_osc", ROOT / "tools" / "gen_readme_osc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.schema_markdown()
    module.schema_markdown = lambda: table
    return module


def test_readme_osc_table_is_generated_and_current(gen, capsys):
    assert gen.main(["--check"]) == 0, "README's OSC table is stale -> run: python tools/gen_readme_osc.py"


def test_stale_readme_table_is_detected_and_regenerated(gen, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- osc-schema:begin -->\n| old | table |\n<!-- osc-schema:end -->\n<!-- section:osc -->\n")
    assert gen.main(["--check", "--readme", str(readme)]) == 1
    assert "stale" in capsys.readouterr().err
    assert "| old | table |" in readme.read_text()
    assert gen.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| old | table |" not in text
    assert "| `/bridge/alpha/threshold` | `f` | 0.0 .. 1.0 | 0.5 | runtime |" in text
    assert text.endswith("<!-- osc-schema:end -->\n<!-- section:osc -->\n")
    assert gen.main(["--check", "--readme", str(readme)]) == 0
