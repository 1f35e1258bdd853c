"""The OSC schema: one address per stage parameter, generated from the stage configs.

Adding a field to a stage config adds its address here, its control in the
TouchDesigner project (which reads ``avatar-bridge osc-schema --json``) and its row in
the README's OSC table; there is no second list to keep in sync.

Each entry has the keys ``address``, ``type`` (OSC type tag: ``f`` float32, ``i``
int32, ``s`` string, ``T`` boolean, ``""`` no argument), ``min``, ``max``,
``choices``, ``default``, ``load_time`` and ``description``.
"""

from __future__ import annotations

import enum
import typing
from typing import Any

from annotated_types import Ge, Gt, Le, Lt

from bridge.stages.base import BasePipelineConfig
from bridge.stages.registry import all_stages

PREFIX = "/bridge"

#: Daemon-wide control addresses (not stage parameters).
CONTROLS: list[dict[str, Any]] = [
    {"address": f"{PREFIX}/preset", "type": "s", "min": None, "max": None, "choices": None, "default": "default",
     "load_time": False, "description": "Switch to a preset from presets/ (validated first, applied whole or not at all)."},
    {"address": f"{PREFIX}/bypass", "type": "i", "min": 0, "max": 1, "choices": None, "default": 0,
     "load_time": False, "description": "1 sends the input through untouched (opaque alpha); 0 runs the stages."},
    {"address": f"{PREFIX}/reload", "type": "", "min": None, "max": None, "choices": None, "default": None,
     "load_time": False, "description": "Reload the current preset's stages in the background."},
    {"address": f"{PREFIX}/ping", "type": "", "min": None, "max": None, "choices": None, "default": None,
     "load_time": False, "description": "The daemon answers /bridge/pong on the reply address."},
]

#: Every address the daemon sends to the reply address (``bridge/osc/status.py``) other
#: than acknowledgements; the TouchDesigner project listens only for these.
STATUS_ADDRESSES: list[str] = [
    f"{PREFIX}/status/{name}"
    for name in ("heartbeat", "state", "fps", "latency_ms", "dropped", "error", "malformed", "ignored", "coalesced")
] + [f"{PREFIX}/error", f"{PREFIX}/pong"]
#: Acknowledgements: ``ACK_PREFIX + <address without /bridge/> <applied value>``.
ACK_PREFIX = f"{PREFIX}/ack/"


def field_entry(config: type[BasePipelineConfig], name: str) -> dict[str, Any]:
    """The schema entry of one config field (see the module docstring for the keys)."""
    info = config.model_fields[name]
    annotation = info.annotation
    choices = None
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = list(typing.get_args(annotation))
        tag = "s"
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = [m.value for m in annotation]
        tag = "s"
    elif annotation is bool:
        tag = "T"
    elif annotation is int:
        tag = "i"
    elif annotation is float:
        tag = "f"
    else:
        tag = "s"
    low = high = None
    for meta in info.metadata:
        if isinstance(meta, (Ge, Gt)):
            low = getattr(meta, "ge", getattr(meta, "gt", None))
        elif isinstance(meta, (Le, Lt)):
            high = getattr(meta, "le", getattr(meta, "lt", None))
    default = info.default
    if isinstance(default, enum.Enum):
        default = default.value
    return {
        "address": f"{PREFIX}/{config.osc_name}/{name}",
        "type": tag,
        "min": low,
        "max": high,
        "choices": choices,
        "default": default,
        "load_time": config.is_load_param(name),
        "description": info.description or "",
    }


def osc_schema(include_controls: bool = True) -> list[dict[str, Any]]:
    """Every address the daemon answers: stage parameters of every registered stage
    (in stage-id order, then UI order), then the controls."""
    entries = []
    for stage in all_stages():
        config = stage.get_config_class()
        for name in config.runtime_fields() + config.load_fields():
            entries.append(field_entry(config, name))
    if include_controls:
        entries.extend(dict(c) for c in CONTROLS)
    return entries


def schema_table(entries: list[dict[str, Any]]) -> str:
    """A Markdown table of ``entries`` (the README's OSC section is generated from it)."""
    rows = ["| address | type | range / choices | default | when | description |", "|---|---|---|---|---|---|"]
    for e in entries:
        if e["choices"]:
            span = " / ".join(str(c) for c in e["choices"])
        elif e["min"] is not None or e["max"] is not None:
            span = f"{e['min']} .. {e['max']}"
        else:
            span = ""
        when = "load-time" if e["load_time"] else "runtime"
        rows.append(f"| `{e['address']}` | `{e['type'] or '-'}` | {span} | {e['default']!r} | {when} | {e['description']} |")
    return "\n".join(rows)
