"""Stand-in for Scope's pipeline registry (``PipelineRegistry``, a view of its ``NodeRegistry``)."""

from .base_schema import BasePipelineConfig


class PipelineRegistry:
    """Pipeline id -> pipeline class."""

    _pipelines: dict = {}

    @classmethod
    def register(cls, pipeline_id: str, pipeline_class: type) -> None:
        """Register ``pipeline_class`` under ``pipeline_id``.

        Raises:
            ValueError: no ``pipeline_id`` (missing, empty, or the base's placeholder).
        """
        if not pipeline_id or pipeline_id == BasePipelineConfig.pipeline_id:
            raise ValueError(f"Cannot determine pipeline_id for {pipeline_class.__name__}; return a config class with `pipeline_id` from `get_config_class()`")
        cls._pipelines[pipeline_id] = pipeline_class

    @classmethod
    def get(cls, pipeline_id: str):
        """The class registered under ``pipeline_id``, or None."""
        return cls._pipelines.get(pipeline_id)

    @classmethod
    def list_pipelines(cls) -> list[str]:
        """Registered ids."""
        return list(cls._pipelines)

    @classmethod
    def clear(cls) -> None:
        """Forget every registration (tests)."""
        cls._pipelines.clear()
