"""Person alpha stage: a person matte from MediaPipe's selfie segmentation model, refined.

The segmentation model ships inside our package and runs on LiteRT
(:class:`bridge.vision.selfie.SelfieSegmenter`), offline on a CPU with nothing to download.
Refinement (motion-aware temporal smoothing, fast guided filter, threshold/softness,
feather) is in :mod:`bridge.matte`; the per-frame order is described there.

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
from bridge.frames import to_uint8_rgb
from bridge.errors import ModelMissingError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, ui_field_config
from bridge.stages.registry import register
from bridge.vision.selfie import SelfieSegmenter


class PersonAlphaConfig(BasePipelineConfig):
    """Parameters of the person alpha stage (all runtime except ``model``)."""

    pipeline_id = "person-alpha"
    pipeline_name = "Person Alpha"
    pipeline_description = "Person matte from MediaPipe's selfie segmentation model on LiteRT, refined along image edges; outputs RGBA."
    usage = [UsageType.POSTPROCESSOR]
    osc_name = "alpha"

    model: Literal["landscape", "general"] = Field(
        default="landscape",
        description="Selfie model: landscape (144x256, faster) or general (256x256).",
        json_schema_extra=ui_field_config(order=0, label="Model", is_load_param=True),
    )
    threads: int = Field(
        default=1, ge=1, le=8,
        description="CPU threads of the segmentation model (LiteRT/XNNPACK).",
        json_schema_extra=ui_field_config(order=10, label="Threads", is_load_param=True),
    )
    threshold: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Person probability that maps to alpha 0.5.",
        json_schema_extra=ui_field_config(order=1, label="Threshold"),
    )
    softness: float = Field(
        default=0.1, ge=0.0, le=0.5,
        description="Half-width of the soft ramp around the threshold, applied after refinement (0 = hard edge).",
        json_schema_extra=ui_field_config(order=2, label="Softness"),
    )
    refine: bool = Field(
        default=True,
        description="Edge-aware refinement guided by the image (fast guided filter); off = bilinear upsampling of the mask.",
        json_schema_extra=ui_field_config(order=3, label="Refine edges"),
    )
    refine_radius: int = Field(
        default=1, ge=1, le=32,
        description="Guided filter window radius in pixels of the refinement grid (the frame shrunk to a long side of at most 160 px), so it scales with the frame.",
        json_schema_extra=ui_field_config(order=4, label="Refine radius"),
    )
    refine_eps: float = Field(
        default=0.001, ge=1e-6, le=0.1,
        description="Guided filter regularisation in squared luma units (smaller follows weaker image edges).",
        json_schema_extra=ui_field_config(order=5, label="Refine eps"),
    )
    feather: float = Field(
        default=0.0, ge=0.0, le=20.0,
        description="Gaussian feather of the matte edge, sigma in pixels.",
        json_schema_extra=ui_field_config(order=6, label="Feather"),
    )
    temporal: float = Field(
        default=0.8, ge=0.0, le=0.95,
        description="Temporal smoothing against flicker: weight of the previous mask where the image is still; moving parts follow at once (0 = off).",
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


def load_selfie_segmenter(model: str, threads: int = 1) -> SelfieSegmenter:
    """The LiteRT selfie segmenter for ``model`` ("landscape" or "general") on ``threads`` threads.

    Raises:
        ModelMissingError: LiteRT or the bundled model is missing, or ``model`` is unknown;
            the message names the fix.
    """
    try:
        return SelfieSegmenter(model, num_threads=threads)
    except ValueError as exc:
        raise ModelMissingError(f"person-alpha: {exc}") from None


@register
class PersonAlphaStage(Pipeline):
    """Person alpha postprocessor.

    Input: ``video`` (list of (1,H,W,3) in [0,255], uint8 or float); optional
    ``source_video`` (the daemon's input frames, same layout, any size) used when
    ``alpha_source="input"``; the runtime parameters of :class:`PersonAlphaConfig`.
    Output: ``{"video": THWC float32 [0,1], "alpha": THW1 float32 [0,1]}`` at the size
    of ``video``.

    Per frame (see :mod:`bridge.matte`): segment at the working resolution (long side
    <= 320 px), motion-aware temporal smoothing, fast guided filter up to full size,
    soft threshold, feather; then straight or premultiplied RGB.

    Raises:
        ModelMissingError: at construction, when LiteRT or the bundled model is unavailable.
        ValueError: from ``__call__`` when ``video`` is missing or not (1,H,W,C) frames.
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PersonAlphaConfig

    def __init__(self, device: torch.device | str | None = None, model: str = "landscape", threads: int = 1, **kwargs: Any) -> None:
        super().__init__(device)
        # one argument when it is the default: the loader keeps its old one-argument call
        self._segmenter = load_selfie_segmenter(model) if threads == 1 else load_selfie_segmenter(model, threads)
        self._smoother = matte.TemporalSmoother()
        self._guided = matte.FastGuidedFilter()
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def reset(self) -> None:
        self._smoother.reset()

    def _buf(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 32:  # the frame size changed: drop the old buffers
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Raw person probability, (H, W) float32 in [0, 1], for one (H, W, 3) uint8 RGB frame."""
        return self._segmenter(np.ascontiguousarray(rgb))

    def matte(self, rgb: np.ndarray, out: np.ndarray | None = None, **params: Any) -> np.ndarray:
        """Refined alpha, (H, W) float32 in [0, 1], for one (H, W, 3) uint8 RGB frame.

        ``params`` are the runtime parameters (missing ones take their defaults); the
        result is written to ``out`` when given (an (H, W) float32 array).
        """
        defaults = PersonAlphaConfig.model_fields
        get = lambda name: params.get(name, defaults[name].default)  # noqa: E731
        h, w = rgb.shape[:2]
        factor = matte.work_scale(h, w)
        small_shape = (max(1, h // factor), max(1, w // factor))
        rgb = np.ascontiguousarray(rgb)  # no copy unless it is a view (e.g. RGB of an RGBA frame)
        small = rgb if factor == 1 else matte.downscale(rgb, factor, out=self._buf("small", small_shape + (3,), np.uint8))
        luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY, dst=self._buf("luma", small_shape, np.uint8))
        guide = np.multiply(luma, np.float32(1.0 / 255.0), out=self._buf("guide", small_shape), dtype=np.float32)
        prob = self._smoother.update(self.segment(small), float(get("temporal")), guide)
        threshold, softness, sigma = float(get("threshold")), float(get("softness")), float(get("feather"))
        if sigma > 0:
            target = self._buf("refined", (h, w))
        else:
            target = out if out is not None else np.empty((h, w), np.float32)
        hard = softness <= 1e-6
        if get("refine"):
            # coefficients on the coarser refinement grid, applied to the full-size luma;
            # the soft threshold's ramp is folded into them (bridge.matte.FastGuidedFilter)
            coarse = matte.work_scale(h, w, matte.REFINE_MAX_SIDE)
            coarse_shape = (max(1, h // coarse), max(1, w // coarse))
            if coarse_shape != small_shape:
                size = (coarse_shape[1], coarse_shape[0])
                prob = cv2.resize(prob, size, dst=self._buf("coarse_prob", coarse_shape), interpolation=cv2.INTER_AREA)
                guide = cv2.resize(guide, size, dst=self._buf("coarse_guide", coarse_shape), interpolation=cv2.INTER_AREA)
            if coarse == 1:
                full_luma = None
            elif factor == 1:
                full_luma = luma
            else:
                full_luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY, dst=self._buf("full_luma", (h, w), np.uint8))
            gain, offset = (1.0, 0.0) if hard else matte.ramp(threshold, softness)
            alpha = self._guided(prob, guide, full_luma, int(get("refine_radius")), float(get("refine_eps")), gain, offset, out=target)
            if hard:
                alpha = matte.soft_threshold(alpha, threshold, 0.0, out=alpha)
        else:
            # threshold on the segmentation grid, then a bilinear upsample (a soft edge either way)
            small_alpha = matte.soft_threshold(prob, threshold, softness, out=self._buf("small_alpha", small_shape))
            if factor > 1:
                alpha = cv2.resize(small_alpha, (w, h), dst=target, interpolation=cv2.INTER_LINEAR)
            else:
                np.copyto(target, small_alpha)
                alpha = target
        if sigma > 0:
            alpha = matte.feather(alpha, sigma, out=out)
        return alpha

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        video = kwargs.get("video")
        frames = stack_video(video, self.device)
        source = kwargs.get("source_video") if kwargs.get("alpha_source", "output") == "input" else None
        images = video if not source else source
        t, h, w = frames.shape[:3]
        alpha = torch.empty((len(images), h, w, 1), dtype=torch.float32)
        for i, frame in enumerate(images):
            rgb = to_uint8_rgb(frame[0])
            if rgb.shape[:2] != (h, w):
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            self.matte(rgb, out=alpha[i, ..., 0].numpy(), **kwargs)
        alpha = alpha.to(self.device)
        if kwargs.get("alpha_mode", "straight") == "premultiplied":
            frames.mul_(alpha)
        if not all(f.dtype == torch.uint8 for f in video):  # float input may stray outside [0, 255]
            frames.clamp_(0.0, 1.0)
        return {"video": frames, "alpha": alpha}

