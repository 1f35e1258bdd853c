"""The frame that travels through the engine.

Pixels stay numpy uint8 HWC from the source to the sink; stages see them as torch
tensors (zero-copy ``torch.from_numpy``) and, in the daemon, hand uint8 on where they do
not change pixels (see :mod:`bridge.stages.base`). Times are ``time.perf_counter()`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch


@dataclass
class Frame:
    """One video frame.

    Attributes:
        image: (H, W, 3) uint8 RGB from a source, or (H, W, 4) uint8 RGBA for a sink
            (straight or premultiplied alpha, as the alpha stage was told).
        index: source frame index (0-based; a looping file keeps counting).
        t_capture: perf_counter() seconds when the source produced the frame.
        pts: presentation time in seconds within the source, when known.
        stage_ms: per-stage processing time in ms, filled by the engine.
    """

    image: np.ndarray
    index: int
    t_capture: float
    pts: float | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def to_uint8_rgb(frame: torch.Tensor) -> np.ndarray:
    """One stage input frame as a C-contiguous (H, W, 3) uint8 RGB numpy array.

    Args:
        frame: (H, W, C) tensor, C = 3 or 4 (RGBA: alpha is dropped), values in [0, 255],
            uint8 or float (floats are clamped to [0, 255] and rounded to nearest), on
            any device.

    Returns:
        The frame's own memory (no copy) when it is already uint8 RGB on the CPU and
        C-contiguous; otherwise a new array.
    """
    if frame.dtype != torch.uint8:
        frame = frame.clamp(0, 255).round().to(torch.uint8)
    array = frame.cpu().numpy()
    if array.shape[2] > 3:
        array = array[..., :3]
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def compose_rgba(rgb: np.ndarray, alpha: np.ndarray | None = None, premultiplied: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """An (H, W, 4) uint8 RGBA frame from uint8 RGB and an optional uint8 matte, in OpenCV passes.

    Args:
        rgb: (H, W, 3) uint8 RGB (straight colour).
        alpha: (H, W) or (H, W, 1) uint8 matte, 255 = opaque; None = opaque.
        premultiplied: multiply the colour by alpha (``cv2.COLOR_RGBA2mRGBA``:
            ``(c * a + 127) // 255``, within 1 level of the float product rounded).
        out: an (H, W, 4) uint8 C-contiguous array to write into (a new one if None).

    Returns:
        ``out`` (or the new array): ``cv2.cvtColor`` RGB -> RGBA (alpha 255), then
        ``cv2.insertChannel`` of the matte, then the premultiplication in place.
    """
    h, w = rgb.shape[:2]
    if out is None:
        out = np.empty((h, w, 4), np.uint8)
    cv2.cvtColor(rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA, dst=out)
    if alpha is not None:
        plane = alpha.reshape(h, w)
        cv2.insertChannel(plane if plane.flags.c_contiguous else np.ascontiguousarray(plane), out, 3)
        if premultiplied:
            cv2.cvtColor(out, cv2.COLOR_RGBA2mRGBA, dst=out)
    return out
