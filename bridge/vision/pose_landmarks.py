"""BlazePose GHUM landmark model on one person's region: 33 landmarks, 2 alignment points, a mask.

The model (``pose_landmark_full.tflite``, MediaPipe, Apache-2.0) sees the person in a
256x256 crop, rotated upright and scaled from a region of interest (BlazePose paper,
arXiv 2006.10204, section 3.2). Its outputs (``mediapipe/modules/pose_landmark/
tensors_to_pose_landmarks_and_segmentation.pbtxt``), in the model's output order:

0. (1, 195): 39 landmarks x (x, y, z, visibility, presence); x, y, z in crop pixels,
   visibility and presence are logits (sigmoid). Landmarks 0..32 are the pose, 33 and 34
   the auxiliary alignment points (mid-hip, body circle), 35..38 unused.
1. (1, 1): the pose flag, the probability (already in [0, 1], no activation:
   ``TensorsToFloatsCalculator``) that a person is in the crop; below 0.5 tracking is lost
   (``ThresholdingCalculator``).
2. (1, 256, 256, 1): segmentation logits (sigmoid), in crop pixels.
3. (1, 64, 64, 39): heatmaps; each landmark's x, y is refined as the sigmoid-weighted mean
   cell of a 9x9 window around it when the window's peak is >= 0.5
   (``RefineLandmarksFromHeatmapCalculator``). The published ``.pbtxt`` sets
   ``kernel_size: 7``, but ``mediapipe==0.10.21``'s results are reproduced by 9, the
   option's default in ``refine_landmarks_from_heatmap_calculator.proto``: on carphone's 120
   frames the mean landmark distance to mediapipe's is 0.10 px with 9 and 1.36 px with 7.
4. (1, 117): world landmarks (metres; unused here).

The crop (``pose_landmark_by_roi_cpu.pbtxt``): the region's square is warped to 256x256,
RGB in [0, 1], edges replicated; results go back to the image through the inverse of the
same affine (``pose_landmarks_and_segmentation_inverse_projection.pbtxt``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bridge.vision.runtime import LiteModel

MODEL = "pose_landmark_full.tflite"
INPUT_SIZE = 256
NUM_LANDMARKS = 33
NUM_MODEL_LANDMARKS = 39
AUX_LANDMARKS = slice(33, 35)
HEATMAP_KERNEL = 9  # see the module docstring: what the shipped graph does, not the .pbtxt's 7
HEATMAP_MIN_CONFIDENCE = 0.5
#: Below this pose flag the person is lost (``ThresholdingCalculator`` threshold 0.5).
MIN_PRESENCE = 0.5


def roi_to_affine(roi: tuple[float, float, float, float, float], size: int = INPUT_SIZE) -> np.ndarray:
    """The (2, 3) float64 affine from crop pixels (0..size) to image pixels for region ``roi``.

    ``roi``: ``(cx, cy, w, h, rotation)``, pixels and radians (clockwise, y down). A crop
    point ``(u, v)`` maps to ``centre + R(rotation) @ ((u / size - 0.5) * w, (v / size - 0.5) * h)``
    (MediaPipe ``LandmarkProjectionCalculator``; the crop's corners are the region's).
    """
    cx, cy, w, h, rot = roi
    c, s = math.cos(rot), math.sin(rot)
    sx, sy = w / size, h / size
    return np.array(
        [[c * sx, -s * sy, cx - c * w * 0.5 + s * h * 0.5],
         [s * sx, c * sy, cy - s * w * 0.5 - c * h * 0.5]],
        np.float64,
    )


@dataclass
class LandmarkResult:
    """The landmark model's answer for one region.

    Attributes:
        presence: the pose flag in [0, 1].
        landmarks: (33, 5) float32 x, y in image pixels, z in pixels (the same scale as
            x; smaller is nearer the camera, 0 at the hips), visibility, presence in [0, 1].
        aux: (2, 5) float32 the two alignment points (mid-hip, body circle), same layout.
        mask: (256, 256) float32 person probability in crop pixels, or None.
        crop_to_image: (2, 3) float64 affine from crop pixels to image pixels.
    """

    presence: float
    landmarks: np.ndarray
    aux: np.ndarray
    mask: np.ndarray | None
    crop_to_image: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function; a large negative logit gives exactly 0 (exp overflows to inf, silently)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = HEATMAP_MIN_CONFIDENCE) -> np.ndarray:
    """Refine normalised landmark positions with the model's heatmaps (``RefineLandmarksFromHeatmapCalculator``).

    Args:
        xy: (N, 2) float, x, y normalised to [0, 1] of the crop.
        heatmap: (Hh, Wh, N) float logits.

    Returns:
        (N, 2) float: for each landmark inside the heatmap, the sigmoid-weighted mean of the
        cell coordinates (column / Wh, row / Hh) over a ``kernel`` x ``kernel`` window around
        its cell (cut at the borders), when the window's highest sigmoid is >= ``min_confidence``;
        otherwise unchanged.
    """
    hh, hw, n = heatmap.shape
    out = np.array(xy, np.float64, copy=True)
    col = np.floor(out[:, 0] * hw).astype(np.int64)
    row = np.floor(out[:, 1] * hh).astype(np.int64)
    inside = (col >= 0) & (col < hw) & (row >= 0) & (row < hh)
    if not inside.any():
        return out
    half = (kernel - 1) // 2
    idx = np.nonzero(inside)[0]
    offsets = np.arange(-half, half + 1)
    rows = row[idx, None] + offsets  # (M, k)
    cols = col[idx, None] + offsets
    valid = ((rows >= 0) & (rows < hh))[:, :, None] & ((cols >= 0) & (cols < hw))[:, None, :]
    values = heatmap[np.clip(rows, 0, hh - 1)[:, :, None], np.clip(cols, 0, hw - 1)[:, None, :], idx[:, None, None]]
    conf = np.where(valid, _sigmoid(values.astype(np.float64)), 0.0)  # (M, k, k)
    total = conf.sum(axis=(1, 2))
    peak = conf.max(axis=(1, 2))
    wx = (conf * cols[:, None, :]).sum(axis=(1, 2))
    wy = (conf * rows[:, :, None]).sum(axis=(1, 2))
    ok = (peak >= min_confidence) & (total > 0)
    sel = idx[ok]
    out[sel, 0] = wx[ok] / hw / total[ok]
    out[sel, 1] = wy[ok] / hh / total[ok]
    return out


class PoseLandmarker:
    """The landmark model on LiteRT: :meth:`__call__` (frame, region) -> :class:`LandmarkResult`.

    Args:
        num_threads: LiteRT CPU threads.
        segmentation: also return the person mask (costs a 256x256 sigmoid).

    Raises:
        ModelMissingError: LiteRT or the model file is missing.
    """

    def __init__(self, num_threads: int = 1, segmentation: bool = True) -> None:
        self.model = LiteModel(MODEL, num_threads)
        self.segmentation = bool(segmentation)
        self._crop = np.empty((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        self._tensor = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def __call__(self, rgb: np.ndarray, roi: tuple[float, float, float, float, float]) -> LandmarkResult:
        """Run the model on region ``roi`` (cx, cy, w, h px, rotation rad) of ``rgb`` ((H, W, 3) uint8)."""
        crop_to_image = roi_to_affine(roi)
        image_to_crop = cv2.invertAffineTransform(crop_to_image)
        cv2.warpAffine(rgb, image_to_crop, (INPUT_SIZE, INPUT_SIZE), dst=self._crop, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
        np.multiply(self._crop, np.float32(1.0 / 255.0), out=self._tensor[0], dtype=np.float32)
        raw, flag, seg, heatmap, _world = self.model(self._tensor)
        presence = float(flag.reshape(-1)[0])  # already a probability (TensorsToFloatsCalculator, no activation)
        values = raw.reshape(NUM_MODEL_LANDMARKS, 5).astype(np.float64)
        xy = values[:, :2] / INPUT_SIZE
        xy = refine_from_heatmap(xy, heatmap[0])
        crop_xy = xy * INPUT_SIZE
        image_xy = crop_xy @ crop_to_image[:, :2].T + crop_to_image[:, 2]
        out = np.empty((NUM_MODEL_LANDMARKS, 5), np.float32)
        out[:, :2] = image_xy
        out[:, 2] = values[:, 2] * (roi[2] / INPUT_SIZE)
        out[:, 3:] = _sigmoid(values[:, 3:])
        mask = None
        if self.segmentation:
            mask = _sigmoid(seg[0, :, :, 0])  # float32 in, float32 out
        return LandmarkResult(presence, out[:NUM_LANDMARKS], out[AUX_LANDMARKS], mask, crop_to_image)
