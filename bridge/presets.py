"""Presets: YAML files in ``presets/`` naming the stages of a chain and their parameters.

Format (``presets/default.yaml``)::

    description: Person alpha only ...
    stages:
      - stage: alpha          # a stage id or OSC name
        params:
          threshold: 0.5

Every stage and parameter is checked against the stage configs; an unknown stage or
field, a wrong type or an out-of-range value is a :class:`ConfigError` that names it.
Names are plain words (letters, digits, ``-``, ``_``): a preset name cannot be a path,
so nothing outside the presets folder is read. YAML is read with ``yaml.safe_load``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.chain import validate_params, validation_message
from bridge.errors import ConfigError
from bridge.stages.registry import UnknownStageError, get_stage

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def presets_dir() -> Path:
    """The presets folder: ``$AVATAR_BRIDGE_PRESETS`` or the ``presets/`` beside the package."""
    env = os.environ.get("AVATAR_BRIDGE_PRESETS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "presets"


class StageEntry(BaseModel):
    """One stage of a preset: ``stage`` (id or OSC name) and its ``params``."""

    model_config = ConfigDict(extra="forbid")
    stage: str
    params: dict[str, Any] = Field(default_factory=dict)


class Preset(BaseModel):
    """A validated preset. ``stages`` in chain order (source side first)."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    description: str = ""
    stages: list[StageEntry] = Field(default_factory=list)

    def chain_spec(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(stage, params), ...]`` for :meth:`bridge.chain.Chain.from_spec`."""
        return [(s.stage, dict(s.params)) for s in self.stages]


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain preset name. Raises ConfigError otherwise."""
    if not NAME_RE.match(name or ""):
        raise ConfigError(f"bad preset name {name!r}: use letters, digits, '-' and '_' only (see 'avatar-bridge presets list')")
    return name


def list_presets(folder: Path | None = None) -> list[str]:
    """Names of the presets in ``folder`` (default :func:`presets_dir`), sorted."""
    folder = folder or presets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml") if NAME_RE.match(p.stem))


def parse_preset(data: Any, name: str = "") -> Preset:
    """Validate preset data (a mapping from YAML) against the stage configs.

    Raises:
        ConfigError: wrong shape, unknown stage, unknown field, bad value (named).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"preset {name!r}: expected a mapping with 'stages:', got {type(data).__name__}")
    try:
        preset = Preset.model_validate({**data, "name": name})
    except ValidationError as exc:
        raise ConfigError(f"preset {name!r}: {validation_message(exc)}") from None
    seen = set()
    for entry in preset.stages:
        try:
            cls = get_stage(entry.stage)
        except UnknownStageError as exc:
            raise ConfigError(f"preset {name!r}: {exc}") from None
        config = cls.get_config_class()
        if config.osc_name in seen:
            raise ConfigError(f"preset {name!r}: stage {entry.stage!r} appears twice")
        seen.add(config.osc_name)
        try:
            entry.params = validate_params(config, entry.params).model_dump(include=set(entry.params))
        except ConfigError as exc:
            raise ConfigError(f"preset {name!r}: {exc}") from None
    return preset


def load_preset(name: str, folder: Path | None = None) -> Preset:
    """Load and validate ``presets/<name>.yaml``.

    Raises:
        ConfigError: bad name, no such preset (lists the known ones), YAML syntax
            error, or a validation error naming the field.
    """
    check_name(name)
    folder = folder or presets_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_presets(folder)) or "none"
        raise ConfigError(f"no preset {name!r} in {folder}; known presets: {known}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"preset {name!r}: YAML error{where}: {getattr(exc, 'problem', exc)}; fix {path}") from None
    return parse_preset(data, name)
