"""Passthrough stage: frames out as they came in (tests, benchmarks, bypass)."""

from __future__ import annotations

from typing import Any

import torch

from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video
from bridge.stages.registry import register


class PassthroughConfig(BasePipelineConfig):
    """No parameters."""

    pipeline_id = "passthrough"
    pipeline_name = "Passthrough"
    pipeline_description = "Returns the input frames unchanged (THWC float32 in [0, 1])."
    usage = [UsageType.MAIN]
    osc_name = "passthrough"


@register
class PassthroughStage(Pipeline):
    """Input (1,H,W,C) frames in [0,255] -> ``{"video": THWC float32 in [0,1]}``, same pixels."""

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PassthroughConfig

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        return {"video": stack_video(kwargs.get("video"), self.device)}
