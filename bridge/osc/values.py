"""Coercion of OSC arguments into stage parameter values.

TouchDesigner sends what its operators hold, not what a field's type says: a CHOP
sends every channel (toggles and integer sliders included) as a float32, an OSC Out
DAT sends Python values (strings from table cells), and other senders use the OSC
``T``/``F`` tags for booleans. :func:`coerce` turns one message's arguments into the
Python value a field expects, or raises :class:`ValueRejected` saying what was
expected. Bounds and choices are then checked by the stage config itself (pydantic,
through :meth:`bridge.chain.Chain.set_param`): this module decides the *type*, the
config decides whether the value is *allowed*. Nothing is clamped.

Rules (field type -> accepted arguments):

* float (``f``): int, float (finite), a numeric string. A float32 that came over OSC
  is read back as the shortest decimal with the same float32 (0.65 travels as
  0.64999997 and is applied as 0.65), so a slider's end value is never out of range
  by a rounding error.
* int (``i``): int, a whole float (``6.0`` from a CHOP), a whole numeric string.
  ``6.4`` is refused, not rounded.
* bool (``T``): ``T``/``F``, 0/1 (int or float), "true"/"false", "on"/"off",
  "yes"/"no", "1"/"0" (any case).
* choice (``s`` with choices): one of the choices (as a string, or the value itself),
  or its 0-based index as a whole number (a TD menu's ``menuIndex`` from a CHOP).
* string (``s``): a string.
* list (e.g. ``t_index_list: list[int]``): one OSC argument per item, or one string
  ``"10, 25, 40"``; each item by the rules above.
* optional (``X | None``): the OSC nil tag ``N`` or the string "none" give None.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from typing import Any, Sequence

import numpy as np

from bridge.errors import ConfigError
from bridge.stages.base import BasePipelineConfig

_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


class ValueRejected(ConfigError):
    """The OSC arguments cannot be read as the field's type; the message says what is expected."""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, (bytes, bytearray)):
        return f"a blob of {len(value)} bytes"
    if isinstance(value, str):
        return f"string {value!r}"
    if value is None:
        return "nil"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)}"
    return repr(value)


def from_float32(value: float) -> float:
    """The shortest decimal that has ``value``'s float32, when ``value`` is a float32.

    OSC floats are float32 (``f`` tag), so 0.65 arrives as 0.64999997 and a slider at
    ``le=0.1`` would send 0.10000000149 > 0.1. A value that is not exactly a float32
    (an OSC ``d`` double) is returned unchanged.
    """
    f32 = np.float32(value)
    if float(f32) != value:
        return value
    return float(str(f32))


def as_float(value: Any) -> float:
    """An OSC argument as a finite float. Raises ValueRejected."""
    if isinstance(value, bool) or value is None or isinstance(value, (bytes, bytearray, list, tuple)):
        raise ValueRejected(f"expects a number, got {_describe(value)}")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueRejected(f"expects a number, got {_describe(value)}") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValueRejected(f"expects a number, got {_describe(value)}")
    if not math.isfinite(number):
        raise ValueRejected(f"expects a finite number, got {number}")
    return from_float32(number) if isinstance(value, float) else number


def as_int(value: Any) -> int:
    """An OSC argument as an int: ints, whole floats (``6.0``) and whole numeric strings.

    Raises:
        ValueRejected: a fraction (``6.4`` is refused, not rounded), or not a number.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = as_float(value)
    except ValueRejected:
        raise ValueRejected(f"expects a whole number, got {_describe(value)}") from None
    if not number.is_integer():
        raise ValueRejected(f"expects a whole number, got {number:g}")
    return int(number)


def as_bool(value: Any) -> bool:
    """An OSC argument as a toggle: T/F, 0/1 (int or float) or true/false/on/off/yes/no. Raises ValueRejected."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueRejected(f"expects a toggle (0/1, T/F or true/false), got {_describe(value)}")


def as_choice(value: Any, choices: Sequence[Any]) -> Any:
    """One of ``choices``: the choice itself (or its string form), or its 0-based index. Raises ValueRejected."""
    listed = " | ".join(str(c) for c in choices)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        for choice in choices:
            if value == choice or (isinstance(value, str) and value.strip() == str(choice)):
                return choice
        if not isinstance(value, str) and all(isinstance(c, str) for c in choices):
            if float(value).is_integer() and 0 <= int(value) < len(choices):
                return choices[int(value)]
    raise ValueRejected(f"expects one of {listed} (or its index 0..{len(choices) - 1}), got {_describe(value)}")


def as_string(value: Any) -> str:
    """A string argument. Raises ValueRejected for anything else (numbers, blobs)."""
    if isinstance(value, str):
        return value
    raise ValueRejected(f"expects a string, got {_describe(value)}")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(annotation)):
            return args[0], True
    return annotation, False


def _coerce_one(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return as_choice(value, typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        member = as_choice(value, [m.value for m in annotation])
        return annotation(member)
    if annotation is bool:
        return as_bool(value)
    if annotation is int:
        return as_int(value)
    if annotation is float:
        return as_float(value)
    if annotation is str:
        return as_string(value)
    return value  # anything else: the config's own validation decides


def coerce(config: type[BasePipelineConfig], name: str, args: Sequence[Any]) -> Any:
    """The value for field ``name`` of ``config`` from one OSC message's arguments.

    Args:
        config: the stage's config class.
        name: a field of ``config``.
        args: the message's arguments as python-osc decoded them (float, int, str,
            bool for T/F, None for N, bytes for blobs).

    Returns:
        A value of the field's Python type (bounds not yet checked).

    Raises:
        ValueRejected: wrong number of arguments or a wrong type; the message says
            what the field expects.
    """
    annotation, optional = _unwrap_optional(config.model_fields[name].annotation)
    if optional and len(args) == 1 and (args[0] is None or (isinstance(args[0], str) and args[0].strip().lower() == "none")):
        return None
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        item = (typing.get_args(annotation) or (Any,))[0]
        values: list[Any] = list(args)
        if len(values) == 1 and isinstance(values[0], str):
            text = values[0].strip().strip("[]()")
            values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise ValueRejected("expects one or more values, got none")
        return [_coerce_one(item, v) for v in values]
    if len(args) != 1:
        got = "none" if not args else f"{len(args)} values"
        raise ValueRejected(f"expects one value, got {got}")
    return _coerce_one(annotation, args[0])
