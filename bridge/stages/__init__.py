"""Stages: one file per stage, each registered by id (see :mod:`bridge.stages.registry`).

Importing a stage module must stay cheap: heavy libraries (LiteRT, diffusers) are
imported when a stage is constructed, not when it is registered.
"""

from bridge.stages import alpha, passthrough  # noqa: F401  (registration side effect)
from bridge.stages import pose  # noqa: F401  (registration side effect; LiteRT loads lazily)
from bridge.stages import avatar  # noqa: F401  (registration side effect; diffusers loads lazily)
from bridge.stages.base import (
    BasePipelineConfig,
    ModeDefaults,
    Pipeline,
    Requirements,
    UsageType,
    ui_field_config,
)
from bridge.stages.registry import all_stages, get_stage, register

__all__ = [
    "BasePipelineConfig",
    "ModeDefaults",
    "Pipeline",
    "Requirements",
    "UsageType",
    "all_stages",
    "get_stage",
    "register",
    "ui_field_config",
]
