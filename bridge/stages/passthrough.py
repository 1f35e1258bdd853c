"""Passthrough stage: frames out as they came in (tests, benchmarks, bypass)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, uint8_video
from bridge.stages.registry import register


class PassthroughConfig(BasePipelineConfig):
    """No parameters."""

    pipeline_id = "passthrough"
    pipeline_name = "Passthrough"
    pipeline_description = "Returns the input frames unchanged (THWC float32 in [0, 1])."
    usage = [UsageType.MAIN]
    osc_name = "passthrough"
    max_workers: ClassVar[int] = 2  # stateless and thread-safe


@register
class PassthroughStage(Pipeline):
    """Input (1,H,W,C) frames in [0,255] -> ``{"video": THWC float32 in [0,1]}``, same pixels.

    With ``keep_uint8=True`` (the daemon's chain) and uint8 input, ``video`` is the input
    itself, (T,H,W,C) uint8 (no copy for one frame).
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PassthroughConfig

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        video = kwargs.get("video")
        kept = uint8_video(video, kwargs.get("keep_uint8", False))
        return {"video": kept if kept is not None else stack_video(video, self.device)}
