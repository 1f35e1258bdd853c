"""Presets: validated against the stage configs, safe names, safe YAML."""

from __future__ import annotations

import pytest

from bridge.errors import ConfigError
from bridge.presets import list_presets, load_preset, parse_preset


def test_shipped_presets_are_valid():
    names = list_presets()
    assert "default" in names
    for name in names:
        preset = load_preset(name)
        assert preset.stages and preset.description


def test_unknown_field_is_named(tmp_path):
    (tmp_path / "p.yaml").write_text("stages:\n  - stage: alpha\n    params: {treshold: 0.4}\n")
    with pytest.raises(ConfigError, match="treshold"):
        load_preset("p", tmp_path)


def test_out_of_range_value_is_named(tmp_path):
    (tmp_path / "p.yaml").write_text("stages:\n  - stage: alpha\n    params: {softness: 3}\n")
    with pytest.raises(ConfigError, match="softness"):
        load_preset("p", tmp_path)


def test_unknown_stage_lists_known_ones():
    with pytest.raises(ConfigError, match="known stages: .*person-alpha"):
        parse_preset({"stages": [{"stage": "glitter"}]}, "x")


def test_names_cannot_escape_the_folder(tmp_path):
    (tmp_path / "evil.yaml").write_text("stages: []\n")
    for name in ("../evil", "/etc/passwd", "a/b", "..", ""):
        with pytest.raises(ConfigError, match="bad preset name"):
            load_preset(name, tmp_path / "sub")


def test_yaml_is_loaded_safely(tmp_path):
    (tmp_path / "p.yaml").write_text("stages: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="YAML error"):
        load_preset("p", tmp_path)


def test_missing_preset_lists_known(tmp_path):
    (tmp_path / "one.yaml").write_text("stages: [{stage: alpha}]\n")
    with pytest.raises(ConfigError, match="known presets: one"):
        load_preset("two", tmp_path)
