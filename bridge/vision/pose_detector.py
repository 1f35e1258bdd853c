"""BlazePose person detector: every person in an RGB frame, as a box and 4 alignment keypoints.

The model (``pose_detection.tflite``, MediaPipe, Apache-2.0) looks at a 224x224 letterboxed
copy of the frame and regresses, for each of 2254 SSD anchors, a box and four keypoints
(BlazePose paper, arXiv 2006.10204, section 3.1: "the middle point of the human hips, the
radius of a circle circumscribing the whole person, and the incline angle of the line
connecting the shoulder and hip midpoints"):

* keypoint 0: the mid-hip point; keypoint 1: a point on the circle around the whole body
  (its distance from keypoint 0 is the radius, its direction the body's "up");
* keypoints 2 and 3: the same for the upper body (mid-shoulder, upper-body circle).

Constants from ``mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt``:
input 224x224 RGB in [-1, 1], aspect kept with zero padding (``BORDER_ZERO``);
``SsdAnchorsCalculator``: 5 layers, strides 8, 16, 32, 32, 32, scales 0.1484375..0.75,
offset 0.5, aspect ratio 1, fixed anchor size (2254 anchors);
``TensorsToDetectionsCalculator``: 12 coordinates (box at 0, 4 keypoints x 2 at 4), scale
224, sigmoid score clipped at 100, min score 0.5; ``NonMaxSuppressionCalculator``:
weighted, IoU 0.3. The ROI for the landmark model comes from
``mediapipe/modules/pose_landmark/pose_detection_to_roi.pbtxt`` (:func:`alignment_roi`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bridge.vision.runtime import LiteModel
from bridge.vision.ssd import AnchorOptions, decode, sigmoid_scores, ssd_anchors, weighted_nms

MODEL = "pose_detection.tflite"
INPUT_SIZE = 224
ANCHOR_OPTIONS = AnchorOptions(
    input_size=(INPUT_SIZE, INPUT_SIZE),
    strides=(8, 16, 32, 32, 32),
    min_scale=0.1484375,
    max_scale=0.75,
    anchor_offset=(0.5, 0.5),
    aspect_ratios=(1.0,),
    fixed_anchor_size=True,
)
NUM_KEYPOINTS = 4
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: ROI from the alignment keypoints (``pose_detection_to_roi.pbtxt``): keypoint 0 is the
#: centre, keypoint 1 gives size and rotation, "up" is at 90 degrees, scaled 1.25, square.
ROI_SCALE = 1.25
ROI_TARGET_ANGLE = math.pi / 2


@dataclass
class Detection:
    """One detected person, in image pixels.

    Attributes:
        score: detector confidence in [0, 1].
        box: (4,) float32 ``xmin, ymin, xmax, ymax`` in pixels.
        keypoints: (4, 2) float32 x, y in pixels: mid-hip, full-body circle point,
            mid-shoulder, upper-body circle point.
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray

    def roi(self) -> tuple[float, float, float, float, float]:
        """The landmark model's region for this person, see :func:`alignment_roi`."""
        return alignment_roi(self.keypoints[0], self.keypoints[1])


def alignment_roi(center: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> tuple[float, float, float, float, float]:
    """A rotated square region from two alignment points (MediaPipe ``AlignmentPointsRectsCalculator``
    then ``RectTransformationCalculator``, ``pose_detection_to_roi.pbtxt`` and
    ``pose_landmarks_to_roi.pbtxt``).

    Args:
        center: (2,) x, y in pixels (mid-hip).
        scale_point: (2,) x, y in pixels (a point on the body's circle, towards the head).
        scale: size factor (1.25: the region is 2.5 radii wide).

    Returns:
        ``(cx, cy, w, h, rotation)``: centre and size in pixels (square), rotation in
        radians in [-pi, pi), clockwise on the image (y down), such that the body's "up"
        (from ``center`` to ``scale_point``) is the region's up.
    """
    x0, y0 = float(center[0]), float(center[1])
    x1, y1 = float(scale_point[0]), float(scale_point[1])
    size = 2.0 * math.hypot(x1 - x0, y1 - y0) * scale
    rotation = ROI_TARGET_ANGLE - math.atan2(-(y1 - y0), x1 - x0)
    rotation = rotation - 2.0 * math.pi * math.floor((rotation + math.pi) / (2.0 * math.pi))
    return (x0, y0, size, size, rotation)


def letterbox_matrix(height: int, width: int, size: int) -> tuple[np.ndarray, float, float, float]:
    """The affine (2, 3) from image pixels to a ``size`` x ``size`` input, aspect kept, centred.

    Returns:
        ``(matrix, scale, offset_x, offset_y)``: ``input = scale * image + offset``.
    """
    scale = size / max(height, width)
    ox = (size - width * scale) * 0.5
    oy = (size - height * scale) * 0.5
    matrix = np.array([[scale, 0.0, ox], [0.0, scale, oy]], np.float64)
    return matrix, scale, ox, oy


class PoseDetector:
    """The BlazePose detector on LiteRT: :meth:`__call__` (RGB frame) -> list of :class:`Detection`.

    Args:
        num_threads: LiteRT CPU threads.
        min_score: detections below this score are dropped (MediaPipe: 0.5).

    Raises:
        ModelMissingError: LiteRT or the model file is missing.
    """

    anchors = ssd_anchors(ANCHOR_OPTIONS)

    def __init__(self, num_threads: int = 1, min_score: float = MIN_SCORE) -> None:
        self.model = LiteModel(MODEL, num_threads)
        self.min_score = float(min_score)
        self._input = np.empty((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        self._tensor = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        """Every person in ``rgb`` ((H, W, 3) uint8 RGB), highest score first, in image pixels."""
        height, width = rgb.shape[:2]
        matrix, scale, ox, oy = letterbox_matrix(height, width, INPUT_SIZE)
        cv2.warpAffine(rgb, matrix, (INPUT_SIZE, INPUT_SIZE), dst=self._input, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.multiply(self._input, np.float32(2.0 / 255.0), out=self._tensor[0], dtype=np.float32)
        self._tensor -= 1.0
        raw_boxes, raw_scores = self.model(self._tensor)
        return self.decode(raw_boxes[0], raw_scores[0, :, 0], scale, ox, oy)

    def decode(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, scale: float = 1.0, ox: float = 0.0,
               oy: float = 0.0) -> list[Detection]:
        """The model's raw outputs ((2254, 12), (2254,)) -> detections in image pixels.

        ``scale``, ``ox``, ``oy``: the letterbox (``input = scale * image + offset``), undone here.
        """
        scores = sigmoid_scores(raw_scores, SCORE_CLIP)
        keep = scores >= self.min_score
        if not keep.any():
            return []
        boxes, keypoints = decode(raw_boxes[keep], self.anchors[keep], float(INPUT_SIZE), NUM_KEYPOINTS)
        out = []
        for score, box, kps in weighted_nms(scores[keep], boxes, keypoints, NMS_IOU):
            box_px = box * INPUT_SIZE
            box_px[[0, 2]] = (box_px[[0, 2]] - ox) / scale
            box_px[[1, 3]] = (box_px[[1, 3]] - oy) / scale
            kps_px = kps * INPUT_SIZE
            kps_px[:, 0] = (kps_px[:, 0] - ox) / scale
            kps_px[:, 1] = (kps_px[:, 1] - oy) / scale
            out.append(Detection(score, box_px.astype(np.float32), kps_px.astype(np.float32)))
        return out
