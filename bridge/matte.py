"""Matte refinement: turn a coarse person mask into an alpha matte that follows the image.

All functions work on single frames: ``mask``/``alpha`` are (H, W) float32 in [0, 1],
``guide`` is (H, W) uint8 (luma) or (H, W, 3) uint8. They write into ``out`` when it
is given, so the per-frame path allocates nothing once buffers exist.

Algorithms:

* soft threshold: a linear ramp from ``threshold - softness`` to
  ``threshold + softness`` (softness 0 is a hard threshold);
* edge-aware refinement: the guided filter (K. He, J. Sun, X. Tang, "Guided Image
  Filtering", ECCV 2010 / TPAMI 2013), via OpenCV's ``cv2.ximgproc.guidedFilter``,
  guided by the frame's luma so edges move from the segmenter's 256-pixel grid onto
  hair and shoulder edges in the image;
* feather: a Gaussian blur of the matte (sigma in pixels);
* temporal smoothing: an exponential moving average of the raw mask,
  ``m_t = (1 - k) * mask_t + k * m_{t-1}``, which damps flicker at the cost of
  ``k / (1 - k)`` frames of lag on moving edges.
"""

from __future__ import annotations

import cv2
import numpy as np


def soft_threshold(mask: np.ndarray, threshold: float, softness: float, out: np.ndarray | None = None) -> np.ndarray:
    """Map a person probability mask to alpha with a linear ramp around ``threshold``.

    Args:
        mask: (H, W) float32 in [0, 1].
        threshold: probability that maps to alpha 0.5, in [0, 1].
        softness: half-width of the ramp in probability units, >= 0 (0 = hard cut).
        out: optional (H, W) float32 buffer for the result.

    Returns:
        (H, W) float32 alpha in [0, 1].
    """
    if softness <= 1e-6:
        _, out = cv2.threshold(mask, threshold, 1.0, cv2.THRESH_BINARY, dst=out)
        return out
    scale = 0.5 / softness
    # (mask - (threshold - softness)) / (2 * softness), clipped to [0, 1]
    out = cv2.addWeighted(mask, scale, mask, 0.0, -(threshold - softness) * scale, dst=out)
    return np.clip(out, 0.0, 1.0, out=out)


def guided_refine(alpha: np.ndarray, guide: np.ndarray, radius: int, eps: float, out: np.ndarray | None = None) -> np.ndarray:
    """Edge-aware refinement of ``alpha`` with the guided filter (He et al. 2010).

    Args:
        alpha: (H, W) float32 in [0, 1].
        guide: (H, W) uint8 luma or (H, W, 3) uint8 RGB, same H and W.
        radius: window radius in pixels (>= 1).
        eps: regularisation in [0, 1]-intensity units squared (larger = smoother,
            less edge-following); scaled here to the uint8 guide's range.
        out: optional (H, W) float32 buffer.

    Returns:
        (H, W) float32 alpha clipped to [0, 1].
    """
    refined = cv2.ximgproc.guidedFilter(guide, alpha, int(radius), float(eps) * 255.0 * 255.0, dst=out)
    return np.clip(refined, 0.0, 1.0, out=refined)


def feather(alpha: np.ndarray, sigma_px: float, out: np.ndarray | None = None) -> np.ndarray:
    """Gaussian feather of the matte edge; ``sigma_px`` in pixels (0 = no-op, returns ``alpha``)."""
    if sigma_px <= 0:
        return alpha
    return cv2.GaussianBlur(alpha, (0, 0), float(sigma_px), dst=out)


class TemporalSmoother:
    """Exponential moving average of successive masks, against flicker.

    ``update(mask, k)`` returns ``(1 - k) * mask + k * previous`` (the first frame, or
    a frame of another size, passes through). ``k`` in [0, 1): 0 = off.
    """

    def __init__(self) -> None:
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous mask (a new stream)."""
        self._state = None

    def update(self, mask: np.ndarray, k: float) -> np.ndarray:
        """Blend ``mask`` ((H, W) float32) with the previous result; returns the smoothed mask."""
        if self._state is None or self._state.shape != mask.shape:
            self._state = np.empty_like(mask)
            k = 0.0
        if k <= 0:
            np.copyto(self._state, mask)
            return self._state
        cv2.addWeighted(mask, 1.0 - k, self._state, k, 0.0, dst=self._state)
        return self._state


def flicker(alphas: list[np.ndarray] | np.ndarray) -> float:
    """Mean |alpha_t - alpha_{t-1}| x 1000 over a sequence of (H, W) mattes in [0, 1].

    The flicker measure of ``shared/notes/platform.md`` (raw selfie masks ~8, RVM ~6.6
    on a talking-head clip). Returns 0.0 for fewer than two frames.
    """
    if len(alphas) < 2:
        return 0.0
    diffs = [float(np.mean(np.abs(b.astype(np.float32) - a.astype(np.float32)))) for a, b in zip(alphas[:-1], alphas[1:])]
    return 1000.0 * float(np.mean(diffs))


def iou(alpha: np.ndarray, reference: np.ndarray, level: float = 0.5) -> float:
    """Intersection over union of ``alpha > level`` and ``reference > level`` (1.0 when both are empty)."""
    a = alpha > level
    b = reference > level
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
