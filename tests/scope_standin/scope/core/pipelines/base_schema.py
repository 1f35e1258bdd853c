"""Stand-in for ``scope.core.pipelines.base_schema``: the config base and its helpers.

Facts kept (Scope v0.2.4): ``ui_field_config`` is keyword-only and returns
``{"ui": {...}}`` with ``category`` ("configuration" unless given) and
``is_load_param`` always present; ``UsageType`` has only PREPROCESSOR and
POSTPROCESSOR (a main pipeline declares ``usage = []``); ``ModeDefaults`` and
``BasePipelineConfig`` forbid extra fields; metadata are ClassVars. The real base also
has more common fields (LoRA, VACE, noise, cache) than the subset below.
"""

from enum import Enum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


def ui_field_config(
    *,
    order: int | None = None,
    component: str | None = None,
    modes: list[str] | None = None,
    is_load_param: bool = False,
    label: str | None = None,
    category: Literal["configuration", "input"] | None = None,
) -> dict[str, Any]:
    """``json_schema_extra`` for a field: ``{"ui": {category, is_load_param, [order, component, modes, label]}}``."""
    ui: dict[str, Any] = {"category": category if category is not None else "configuration", "is_load_param": is_load_param}
    for key, value in (("order", order), ("component", component), ("modes", modes), ("label", label)):
        if value is not None:
            ui[key] = value
    return {"ui": ui}


class UsageType(str, Enum):
    """Where a pipeline may sit besides the main pipeline selector."""

    PREPROCESSOR = "preprocessor"
    POSTPROCESSOR = "postprocessor"


class ModeDefaults(BaseModel):
    """Per-mode overrides; ``default=True`` marks the default mode."""

    model_config = ConfigDict(extra="forbid")

    default: bool = False
    height: int | None = None
    width: int | None = None
    denoising_steps: list[int] | None = None
    noise_scale: float | None = None
    noise_controller: bool | None = None
    input_size: int | None = None


class BasePipelineConfig(BaseModel):
    """Base of every pipeline config: fields are parameters, ClassVars are metadata."""

    model_config = ConfigDict(extra="forbid")

    pipeline_id: ClassVar[str] = "base"
    pipeline_name: ClassVar[str] = "Base Pipeline"
    pipeline_description: ClassVar[str] = "Base pipeline configuration"
    pipeline_version: ClassVar[str] = "1.0.0"
    docs_url: ClassVar[str | None] = None
    estimated_vram_gb: ClassVar[float | None] = None
    requires_models: ClassVar[bool] = False
    artifacts: ClassVar[list] = []
    supports_lora: ClassVar[bool] = False
    supports_vace: ClassVar[bool] = False
    usage: ClassVar[list[UsageType]] = []
    modes: ClassVar[dict[str, ModeDefaults]] = {"text": ModeDefaults(default=True)}
    supports_prompts: ClassVar[bool] = True

    height: int = Field(default=512, ge=1, description="Output height in pixels")
    width: int = Field(default=512, ge=1, description="Output width in pixels")
    base_seed: int = Field(default=42, ge=0, description="Base random seed for reproducible generation")
    input_size: int | None = Field(default=1, ge=1, description="Expected input video frame count (video mode only)")

    @classmethod
    def get_supported_modes(cls) -> list[str]:
        """Names of the supported input modes."""
        return list(cls.modes)

    @classmethod
    def get_default_mode(cls) -> str:
        """The mode marked ``default=True`` (else the first)."""
        for name, mode in cls.modes.items():
            if mode.default:
                return name
        return next(iter(cls.modes))

    @classmethod
    def get_schema_with_metadata(cls) -> dict[str, Any]:
        """What the UI and API read: metadata plus the JSON schema of the fields."""
        return {
            "id": cls.pipeline_id,
            "name": cls.pipeline_name,
            "description": cls.pipeline_description,
            "version": cls.pipeline_version,
            "supported_modes": cls.get_supported_modes(),
            "default_mode": cls.get_default_mode(),
            "supports_prompts": cls.supports_prompts,
            "requires_models": cls.requires_models or bool(cls.artifacts),
            "usage": [usage.value for usage in cls.usage],
            "config_schema": cls.model_json_schema(),
        }
