"""Pose preprocessor stage: a person's pose as an OpenPose-format skeleton image.

The skeleton image is what OpenPose ControlNets were trained on (lllyasviel's
ControlNet 1.0/1.1 annotator): 18 body keypoints in the OpenPose COCO/BODY_18 order,
17 limbs drawn as filled ellipses in the standard limb colours at 60 % brightness,
keypoints as filled circles in full colour, on black. Keypoint order, limb pairs and
colours are the OpenPose ones (CMU OpenPose, Cao et al., "OpenPose: Realtime
Multi-Person 2D Pose Estimation using Part Affinity Fields", TPAMI 2019; the same
constants as the ControlNet annotator's ``draw_bodypose``).

Backends (load-time ``backend``):

* ``mediapipe`` (default, offline, CPU): MediaPipe Pose, ``model_complexity=1`` — the
  only complexity whose model ships inside the ``mediapipe==0.10.21`` wheel (0 and 2
  download at run time and fail offline; see platform.md). Its 33 landmarks are mapped
  to the 18 OpenPose keypoints (the neck is the shoulders' midpoint).
* ``openpose`` / ``dwpose``: controlnet-aux detectors, imported only when chosen (the
  package imports torchvision, which is not a dependency of avatar-bridge).

Output: ``{"video": skeleton THWC float32 [0,1], "control_video": the same tensor,
"keypoints": (T, 18, 3) float32 — x, y in pixels and confidence (0 = missing)}``.
``control_video`` is forwarded by the chain to later stages, so the avatar stage gets
the skeleton for its ControlNet while ``source_video`` still holds the camera frame.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import Field

from bridge.errors import ModelMissingError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, ui_field_config
from bridge.stages.registry import register

#: OpenPose BODY_18 keypoint names, in order.
KEYPOINTS = ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee",
             "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear"]

#: OpenPose limb pairs (0-based keypoint indices); the first 17 are drawn.
LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17)]

#: OpenPose part colours (RGB), one per keypoint; limb i is drawn in COLORS[i] x 0.6.
COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]

#: MediaPipe Pose landmark index for each OpenPose keypoint (None: the neck, derived).
MEDIAPIPE_FOR_OPENPOSE = [0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7]

MEDIAPIPE_FIX = "pip install 'mediapipe==0.10.21' (the last release whose wheel ships the pose model)"


class PoseConfig(BasePipelineConfig):
    """Parameters of the pose stage."""

    pipeline_id = "pose"
    pipeline_name = "Pose (OpenPose skeleton)"
    pipeline_description = "Person pose as an OpenPose-format skeleton image (18 keypoints) for a pose ControlNet."
    usage = [UsageType.PREPROCESSOR]
    osc_name = "pose"

    backend: Literal["mediapipe", "openpose", "dwpose"] = Field(
        default="mediapipe",
        description="Pose detector: mediapipe (offline, CPU, bundled model) or controlnet-aux's openpose / dwpose.",
        json_schema_extra=ui_field_config(order=0, label="Backend", is_load_param=True),
    )
    min_confidence: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Keypoints less visible than this are left out of the skeleton.",
        json_schema_extra=ui_field_config(order=1, label="Min confidence"),
    )
    line_scale: float = Field(
        default=1.0, ge=0.25, le=4.0,
        description="Limb and keypoint size relative to OpenPose's (4 px limbs at 512 px).",
        json_schema_extra=ui_field_config(order=2, label="Line scale"),
    )


def mediapipe_to_openpose(landmarks: Any, width: int, height: int) -> np.ndarray:
    """(18, 3) float32 OpenPose keypoints (x, y in pixels, confidence) from MediaPipe's 33 landmarks.

    ``landmarks`` is ``results.pose_landmarks.landmark`` (normalised x, y; visibility).
    Points outside the image get confidence 0. The neck is the midpoint of the
    shoulders, with the lower of their confidences.
    """
    points = np.zeros((18, 3), np.float32)
    for op_index, mp_index in enumerate(MEDIAPIPE_FOR_OPENPOSE):
        if mp_index is None:
            continue
        lm = landmarks[mp_index]
        inside = 0.0 <= lm.x <= 1.0 and 0.0 <= lm.y <= 1.0
        points[op_index] = (lm.x * width, lm.y * height, lm.visibility if inside else 0.0)
    r, l = points[2], points[5]
    points[1] = ((r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2]))
    return points


def draw_skeleton(keypoints: np.ndarray, height: int, width: int, min_confidence: float = 0.5, line_scale: float = 1.0) -> np.ndarray:
    """Draw an OpenPose skeleton: (H, W, 3) uint8 RGB on black.

    Args:
        keypoints: (18, 3) x, y in pixels and confidence, OpenPose BODY_18 order.
        min_confidence: points below it are not drawn (nor limbs touching them).
        line_scale: 1.0 = OpenPose's 4 px limb half-width and 4 px keypoint radius at
            512 px (scaled with the image's shorter side).
    """
    canvas = np.zeros((height, width, 3), np.uint8)
    size = max(1, round(4 * line_scale * min(height, width) / 512))
    ok = keypoints[:, 2] >= max(min_confidence, 1e-6)
    for i, (a, b) in enumerate(LIMBS[:17]):
        if not (ok[a] and ok[b]):
            continue
        (xa, ya), (xb, yb) = keypoints[a, :2], keypoints[b, :2]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        center = (int(round((xa + xb) / 2)), int(round((ya + yb) / 2)))
        polygon = cv2.ellipse2Poly(center, (int(round(length / 2)), size), int(round(angle)), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, tuple(int(c * 0.6) for c in COLORS[i]))
    for i in range(18):
        if ok[i]:
            x, y = keypoints[i, :2]
            cv2.circle(canvas, (int(round(x)), int(round(y))), size, COLORS[i], thickness=-1)
    return canvas


class _MediaPipePose:
    """MediaPipe Pose (``model_complexity=1``, video mode) -> OpenPose keypoints."""

    def __init__(self) -> None:
        try:
            from mediapipe.python.solutions import pose
        except Exception as exc:
            raise ModelMissingError(f"pose: MediaPipe pose is missing ({exc.__class__.__name__}); {MEDIAPIPE_FIX}") from None
        try:
            self._pose = pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                   min_detection_confidence=0.5, min_tracking_confidence=0.5)
        except Exception as exc:
            raise ModelMissingError(f"pose: could not load the MediaPipe pose model ({exc}); {MEDIAPIPE_FIX}") from None

    def keypoints(self, rgb: np.ndarray) -> np.ndarray:
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return np.zeros((18, 3), np.float32)
        return mediapipe_to_openpose(result.pose_landmarks.landmark, rgb.shape[1], rgb.shape[0])

    def skeleton(self, rgb: np.ndarray, min_confidence: float, line_scale: float) -> tuple[np.ndarray, np.ndarray]:
        points = self.keypoints(rgb)
        return draw_skeleton(points, rgb.shape[0], rgb.shape[1], min_confidence, line_scale), points


class _ControlnetAuxPose:
    """controlnet-aux's OpenPose or DWpose detector (optional; imports torchvision)."""

    def __init__(self, backend: str) -> None:
        try:
            import controlnet_aux
        except Exception as exc:
            raise ModelMissingError(
                f"pose backend {backend!r} needs controlnet-aux ({exc.__class__.__name__}): pip install 'avatar-bridge[controlnet-aux]' "
                "(it needs torchvision), or use backend: mediapipe") from None
        try:
            if backend == "dwpose":
                self._detector = controlnet_aux.DWposeDetector()
            else:
                self._detector = controlnet_aux.OpenposeDetector.from_pretrained("lllyasviel/Annotators")
        except Exception as exc:
            raise ModelMissingError(f"pose backend {backend!r} could not load its model ({exc}); "
                                    "fetch lllyasviel/Annotators into the Hugging Face cache or use backend: mediapipe") from None

    def skeleton(self, rgb: np.ndarray, min_confidence: float, line_scale: float) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        image = self._detector(Image.fromarray(rgb), output_type="pil")
        skeleton = np.asarray(image.convert("RGB").resize((rgb.shape[1], rgb.shape[0])), dtype=np.uint8)
        return skeleton, np.zeros((18, 3), np.float32)  # the detector draws; keypoints are not exposed


@register
class PoseStage(Pipeline):
    """Pose preprocessor: ``video`` (list of (1,H,W,3) in [0,255]) -> OpenPose skeleton.

    Output: ``{"video": THWC float32 [0,1], "control_video": same, "keypoints": (T,18,3)}``.
    A frame with nobody in it gives a black image (not an error).

    Raises:
        ModelMissingError: at construction, when the chosen backend's model is unavailable.
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PoseConfig

    def __init__(self, device: torch.device | str | None = None, backend: str = "mediapipe", **kwargs: Any) -> None:
        super().__init__(device)
        self._detector = _MediaPipePose() if backend == "mediapipe" else _ControlnetAuxPose(backend)

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        video = kwargs.get("video")
        if not video:
            raise ValueError("pose stage needs video input: kwargs['video'] = list of (1,H,W,C) frames")
        min_confidence = float(kwargs.get("min_confidence", 0.5))
        line_scale = float(kwargs.get("line_scale", 1.0))
        skeletons, points = [], []
        for frame in video:
            rgb = frame[0]
            if rgb.dtype != torch.uint8:
                rgb = rgb.clamp(0, 255).round().to(torch.uint8)
            rgb = np.ascontiguousarray(rgb.cpu().numpy()[..., :3])
            skeleton, keypoints = self._detector.skeleton(rgb, min_confidence, line_scale)
            skeletons.append(torch.from_numpy(skeleton))
            points.append(torch.from_numpy(keypoints))
        out = torch.stack(skeletons).to(self.device, torch.float32).mul_(1.0 / 255.0)
        return {"video": out, "control_video": out, "keypoints": torch.stack(points)}
