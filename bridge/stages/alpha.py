"""Person alpha stage: a person matte from MediaPipe selfie segmentation, refined.

The segmentation model ships inside the ``mediapipe==0.10.21`` wheel (the last
release with the legacy ``mediapipe.solutions`` API and its ``.tflite`` models; see
``shared/notes/platform.md``), so it runs offline on a CPU with nothing to download.
Refinement (threshold/softness, guided filter, feather, temporal EMA) is in
:mod:`bridge.matte`.

Output: ``{"video": THWC float32 RGB in [0,1], "alpha": THW1 float32 in [0,1]}``;
with ``alpha_mode="premultiplied"`` the RGB is multiplied by alpha (what
TouchDesigner's Over TOP expects); ``"straight"`` leaves it as it came in.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import Field

from bridge import matte
from bridge.errors import ModelMissingError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, ui_field_config
from bridge.stages.registry import register

MEDIAPIPE_FIX = "pip install 'mediapipe==0.10.21' (the last release whose wheel ships the selfie model)"


class PersonAlphaConfig(BasePipelineConfig):
    """Parameters of the person alpha stage (all runtime except ``model``)."""

    pipeline_id = "person-alpha"
    pipeline_name = "Person Alpha"
    pipeline_description = "Person matte from MediaPipe selfie segmentation, refined along image edges; outputs RGBA."
    usage = [UsageType.POSTPROCESSOR]
    osc_name = "alpha"

    model: Literal["landscape", "general"] = Field(
        default="landscape",
        description="Selfie model: landscape (144x256, faster) or general (256x256).",
        json_schema_extra=ui_field_config(order=0, label="Model", is_load_param=True),
    )
    threshold: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Person probability that maps to alpha 0.5.",
        json_schema_extra=ui_field_config(order=1, label="Threshold"),
    )
    softness: float = Field(
        default=0.15, ge=0.0, le=0.5,
        description="Half-width of the soft ramp around the threshold (0 = hard edge).",
        json_schema_extra=ui_field_config(order=2, label="Softness"),
    )
    refine: bool = Field(
        default=True,
        description="Edge-aware refinement guided by the image (guided filter).",
        json_schema_extra=ui_field_config(order=3, label="Refine edges"),
    )
    refine_radius: int = Field(
        default=6, ge=1, le=32,
        description="Guided filter window radius in pixels.",
        json_schema_extra=ui_field_config(order=4, label="Refine radius"),
    )
    refine_eps: float = Field(
        default=0.001, ge=1e-6, le=0.1,
        description="Guided filter regularisation (smaller follows image edges more closely).",
        json_schema_extra=ui_field_config(order=5, label="Refine eps"),
    )
    feather: float = Field(
        default=0.0, ge=0.0, le=20.0,
        description="Gaussian feather of the matte edge, sigma in pixels.",
        json_schema_extra=ui_field_config(order=6, label="Feather"),
    )
    temporal: float = Field(
        default=0.5, ge=0.0, le=0.95,
        description="Temporal smoothing against flicker: weight of the previous mask (0 = off).",
        json_schema_extra=ui_field_config(order=7, label="Temporal smoothing"),
    )
    alpha_source: Literal["output", "input"] = Field(
        default="output",
        description="Segment the frame this stage receives (output of the main stage) or the daemon's input frame.",
        json_schema_extra=ui_field_config(order=8, label="Alpha source"),
    )
    alpha_mode: Literal["straight", "premultiplied"] = Field(
        default="straight",
        description="Straight alpha, or RGB premultiplied by alpha (TouchDesigner's Over TOP expects premultiplied).",
        json_schema_extra=ui_field_config(order=9, label="Alpha mode"),
    )


def load_selfie_segmenter(model: str) -> Any:
    """A ``mediapipe.solutions.selfie_segmentation.SelfieSegmentation`` for ``model``.

    Raises:
        ModelMissingError: mediapipe is missing or is a release without the bundled
            selfie model (>= 0.10.30); the message names the fix.
    """
    try:
        from mediapipe.python.solutions import selfie_segmentation
    except Exception as exc:  # ImportError, or a mediapipe without the legacy solutions
        raise ModelMissingError(f"person-alpha: the selfie segmentation model is missing ({exc.__class__.__name__}); {MEDIAPIPE_FIX}") from None
    try:
        return selfie_segmentation.SelfieSegmentation(model_selection=1 if model == "landscape" else 0)
    except Exception as exc:
        raise ModelMissingError(f"person-alpha: could not load the selfie model ({exc}); {MEDIAPIPE_FIX}") from None


@register
class PersonAlphaStage(Pipeline):
    """Person alpha postprocessor.

    Input: ``video`` (list of (1,H,W,3) in [0,255]); optional ``source_video`` (the
    daemon's input frames, same layout) used when ``alpha_source="input"``.
    Output: ``{"video": THWC float32 [0,1], "alpha": THW1 float32 [0,1]}``.

    Raises:
        ModelMissingError: at construction, when the MediaPipe model is unavailable.
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PersonAlphaConfig

    def __init__(self, device: torch.device | str | None = None, model: str = "landscape", **kwargs: Any) -> None:
        super().__init__(device)
        self._segmenter = load_selfie_segmenter(model)
        self._smoother = matte.TemporalSmoother()
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def reset(self) -> None:
        self._smoother.reset()

    def _buf(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Raw person probability, (H, W) float32 in [0, 1], for one (H, W, 3) uint8 RGB frame."""
        result = self._segmenter.process(rgb)
        mask = result.segmentation_mask
        if mask is None:
            return np.zeros(rgb.shape[:2], np.float32)
        return mask

    def matte(self, rgb: np.ndarray, **params: Any) -> np.ndarray:
        """Refined alpha, (H, W) float32 in [0, 1], for one (H, W, 3) uint8 RGB frame."""
        defaults = PersonAlphaConfig.model_fields
        get = lambda name: params.get(name, defaults[name].default)  # noqa: E731
        shape = rgb.shape[:2]
        mask = self._smoother.update(self.segment(rgb), float(get("temporal")))
        alpha = matte.soft_threshold(mask, float(get("threshold")), float(get("softness")), out=self._buf("a", shape))
        if get("refine"):
            luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY, dst=self._buf("luma", shape, np.uint8))
            alpha = matte.guided_refine(alpha, luma, int(get("refine_radius")), float(get("refine_eps")), out=self._buf("r", shape))
        return matte.feather(alpha, float(get("feather")), out=self._buf("f", shape))

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        video = kwargs.get("video")
        frames = stack_video(video, self.device)
        source = kwargs.get("source_video") if kwargs.get("alpha_source", "output") == "input" else None
        images = video if not source else source
        alphas = []
        for t, frame in enumerate(images):
            rgb = _to_uint8_rgb(frame[0])
            if rgb.shape[:2] != tuple(frames.shape[1:3]):
                rgb = cv2.resize(rgb, (frames.shape[2], frames.shape[1]), interpolation=cv2.INTER_AREA)
            alphas.append(torch.from_numpy(self.matte(rgb, **kwargs).copy()))
        alpha = torch.stack(alphas)[..., None].to(self.device)
        if kwargs.get("alpha_mode", "straight") == "premultiplied":
            frames.mul_(alpha)
        return {"video": frames.clamp_(0.0, 1.0), "alpha": alpha}


def _to_uint8_rgb(frame: torch.Tensor) -> np.ndarray:
    """(H, W, C) tensor in [0, 255] -> (H, W, 3) uint8 numpy, without a copy when already uint8 on CPU."""
    if frame.dtype != torch.uint8:
        frame = frame.clamp(0, 255).round().to(torch.uint8)
    array = frame.cpu().numpy()
    return array[..., :3] if array.shape[2] > 3 else array
