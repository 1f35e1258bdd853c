"""Stage registry: find a stage class by its ``pipeline_id`` or its OSC name.

Built-in stages register themselves when :mod:`bridge.stages` is imported; a stage
from elsewhere calls :func:`register`. Modelled on Scope's pipeline registry, which
also refuses a class whose config has no ``pipeline_id``.
"""

from __future__ import annotations

from bridge.stages.base import Pipeline

_STAGES: dict[str, type[Pipeline]] = {}


class UnknownStageError(KeyError):
    """No stage is registered under that id or OSC name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want a plain line
        return str(self.args[0])


def register(cls: type[Pipeline]) -> type[Pipeline]:
    """Register a stage class (usable as a decorator).

    Raises:
        ValueError: the config has no ``pipeline_id`` or ``osc_name``, or another
            class already holds that id or OSC name.
    """
    config = cls.get_config_class()
    if not config.pipeline_id or not config.osc_name:
        raise ValueError(f"{cls.__name__}: config needs pipeline_id and osc_name")
    for other in _STAGES.values():
        oc = other.get_config_class()
        if other is not cls and config.osc_name == oc.osc_name:
            raise ValueError(f"OSC name {config.osc_name!r} already used by {oc.pipeline_id!r}")
    existing = _STAGES.get(config.pipeline_id)
    if existing is not None and existing is not cls:
        raise ValueError(f"stage id {config.pipeline_id!r} already registered")
    _STAGES[config.pipeline_id] = cls
    return cls


def get_stage(name: str) -> type[Pipeline]:
    """The stage class whose ``pipeline_id`` or ``osc_name`` is ``name``.

    Raises:
        UnknownStageError: nothing is registered under ``name``; the message lists
            what is.
    """
    _load_builtins()
    if name in _STAGES:
        return _STAGES[name]
    for cls in _STAGES.values():
        if cls.get_config_class().osc_name == name:
            return cls
    known = ", ".join(sorted(_STAGES))
    raise UnknownStageError(f"unknown stage {name!r}; known stages: {known}")


def all_stages() -> list[type[Pipeline]]:
    """Every registered stage class, sorted by id."""
    _load_builtins()
    return [_STAGES[k] for k in sorted(_STAGES)]


def _load_builtins() -> None:
    import bridge.stages  # noqa: F401  (imports register the built-in stages)
