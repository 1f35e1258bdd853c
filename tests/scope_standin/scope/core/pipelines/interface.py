"""Stand-in for ``scope.core.pipelines.interface``: ``Pipeline`` and ``Requirements``."""

import gc
from abc import ABC, abstractmethod

from pydantic import BaseModel


class Requirements(BaseModel):
    """What ``prepare()`` asks for: ``input_size`` frames per call (its only field)."""

    input_size: int


class Pipeline(ABC):
    """Base of every pipeline (Scope v0.2.4 makes this an alias of its ``Node``)."""

    @classmethod
    def get_config_class(cls):
        """The pydantic config class; the base returns ``BasePipelineConfig``."""
        from .base_schema import BasePipelineConfig

        return BasePipelineConfig

    @abstractmethod
    def __call__(self, **kwargs) -> dict:
        """``kwargs["video"]``: list of (1,H,W,C) tensors in [0,255] -> ``{"video": THWC [0,1]}``."""

    def cleanup(self) -> None:
        """Release resources before the pipeline is unloaded."""
        gc.collect()
