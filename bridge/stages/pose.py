"""Pose preprocessor stage: the person's pose as an OpenPose skeleton image for a ControlNet.

The OpenPose ControlNets (``lllyasviel/sd-controlnet-openpose``, ``control_v11p_sd15_openpose``,
``thibaud/controlnet-sd21-openpose-diffusers``) were trained on skeletons drawn by the
OpenPose annotator that ``controlnet-aux`` packages (``open_pose/util.py:draw_bodypose``).
This stage draws the same picture from keypoints (its own code, the annotator's facts):

* 18 keypoints in OpenPose BODY_18 (COCO) order, :data:`KEYPOINTS`;
* 17 limbs, :data:`LIMBS`, each a filled ellipse along the segment, in
  :data:`COLORS` [limb index] at 60 % brightness; then each keypoint a filled circle in
  :data:`COLORS` [keypoint index] at full brightness; black background; RGB order;
* limb half-width and circle radius 4 px on an image whose short side is 512 px (the
  annotator's ``detect_resolution``/``image_resolution``), scaled here with the short side.

Backends (load-time parameter ``backend``):

* ``blazepose`` (default; ``mediapipe`` is an alias kept for old presets and OSC
  messages): our BlazePose pipeline on LiteRT (:mod:`bridge.vision.blazepose`) with
  MediaPipe's ``pose_detection.tflite`` and ``pose_landmark_full.tflite`` bundled in the
  package. Offline, CPU, up to ``max_people`` people (runtime), tracked between frames.
  Each person's 33 landmarks are mapped to the 18 OpenPose keypoints
  (:data:`MEDIAPIPE_FOR_OPENPOSE`); the landmark's ``visibility`` is the confidence; the
  neck, which MediaPipe's topology lacks, is the midpoint of the shoulders with the smaller
  of their confidences (as DWpose computes it). Every person's skeleton is drawn.
* ``openpose`` / ``dwpose``: ``controlnet-aux`` 0.0.10 detectors, imported only when
  selected (the package imports torchvision from its ``__init__``); ``model`` names their
  weights (a Hugging Face repo id or a local folder).

Outputs: ``video`` and ``control_video`` (the same (T, H, W, 3) float32 [0, 1] skeleton
image; the chain forwards ``control_video`` to later stages as a keyword argument, so the
avatar stage gets it as its ControlNet image while ``source_video`` holds the camera
frame) and ``keypoints`` ((T, 18, 3) float32: x, y in pixels of the frame, confidence in
[0, 1]; a keypoint not found or below ``min_confidence`` is (0, 0, 0), OpenPose's JSON
convention; the first tracked person) and ``people`` (a list per frame of
:class:`bridge.vision.blazepose.Person`, each with landmarks, mask and crop affine, for
later stages such as the person alpha stage; empty lists for the controlnet-aux backends).
A frame without a person gives a black image, all-zero keypoints and no people.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import torch
from pydantic import Field

from bridge.frames import to_uint8_rgb
from bridge.errors import ConfigError, ModelMissingError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, ui_field_config
from bridge.stages.registry import register
from bridge.vision.blazepose import MAX_PEOPLE, Person

CONTROLNET_AUX_FIX = (
    "pip install 'controlnet-aux==0.0.10' together with a torchvision built for your torch "
    "(it imports torchvision), or use backend=blazepose"
)

#: OpenPose BODY_18 / COCO keypoint order (OpenPose ``output.md``; controlnet-aux ``body.py``).
KEYPOINTS: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = len(KEYPOINTS)

#: The 17 limbs the OpenPose annotator draws, as 0-based keypoint index pairs, in drawing
#: order (controlnet-aux ``draw_bodypose`` ``limbSeq``, which is 1-based).
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9),
    (9, 10), (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15),
    (15, 17),
)

#: RGB colours of the OpenPose annotator (controlnet-aux ``draw_bodypose``): limb ``i`` uses
#: ``COLORS[i]`` at :data:`LIMB_BRIGHTNESS`, keypoint ``i`` uses ``COLORS[i]``.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
#: Limbs are drawn at 60 % of their colour (the annotator scales the limb canvas by 0.6).
LIMB_BRIGHTNESS = 0.6
LIMB_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    tuple(int(c * LIMB_BRIGHTNESS) for c in color) for color in COLORS[: len(LIMBS)]  # type: ignore[misc]
)
#: Limb half-width and keypoint radius in pixels at :data:`REFERENCE_SIZE` (annotator: 4 px).
REFERENCE_WIDTH_PX = 4
#: Short side, in pixels, of the image the annotator draws on (its default resolution 512).
REFERENCE_SIZE = 512

#: Backend names accepted for the built-in pipeline (``mediapipe``: the old name, an alias).
BLAZEPOSE_NAMES = ("blazepose", "mediapipe")

#: MediaPipe Pose landmark index for each OpenPose keypoint (``None``: the neck, computed).
#: MediaPipe's left/right are the person's, as OpenPose's are.
MEDIAPIPE_FOR_OPENPOSE: tuple[int | None, ...] = (
    0,     # nose
    None,  # neck = midpoint of the shoulders
    12, 14, 16,  # right shoulder, elbow, wrist
    11, 13, 15,  # left shoulder, elbow, wrist
    24, 26, 28,  # right hip, knee, ankle
    23, 25, 27,  # left hip, knee, ankle
    5, 2,        # right eye, left eye
    8, 7,        # right ear, left ear
)
_NECK, _R_SHOULDER, _L_SHOULDER = 1, 2, 5


class PoseConfig(BasePipelineConfig):
    """Parameters of the pose stage: ``backend`` and ``model`` are load-time, the rest runtime."""

    pipeline_id = "pose"
    pipeline_name = "Pose (OpenPose skeleton)"
    pipeline_description = (
        "Person pose -> OpenPose-format skeleton image (18 keypoints, standard colours) for a pose ControlNet."
    )
    usage = [UsageType.PREPROCESSOR]
    osc_name = "pose"

    backend: Literal["blazepose", "mediapipe", "openpose", "dwpose"] = Field(
        default="blazepose",
        description="Pose detector: blazepose (offline, CPU, bundled MediaPipe models on LiteRT; mediapipe = the same, old name) or a controlnet-aux detector (optional install).",
        json_schema_extra=ui_field_config(order=0, label="Backend", is_load_param=True),
    )
    threads: int = Field(
        default=1, ge=1, le=8,
        description="CPU threads of the blazepose models (LiteRT/XNNPACK).",
        json_schema_extra=ui_field_config(order=5, label="Threads", is_load_param=True),
    )
    model: str = Field(
        default="",
        description="Weights of the openpose/dwpose backend: a Hugging Face repo id or a local folder (empty = controlnet-aux's defaults).",
        json_schema_extra={**ui_field_config(order=1, label="Model", is_load_param=True), "path": True},
    )
    min_confidence: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Keypoints below this confidence are not drawn (and a limb needs both ends).",
        json_schema_extra=ui_field_config(order=2, label="Min confidence"),
    )
    line_scale: float = Field(
        default=1.0, ge=0.25, le=4.0,
        description="Limb and keypoint size relative to OpenPose's (4 px limbs at 512 px).",
        json_schema_extra=ui_field_config(order=3, label="Line scale"),
    )
    max_people: int = Field(
        default=1, ge=1, le=MAX_PEOPLE,
        description="How many people the blazepose backend follows and draws (each costs one landmark model run per frame).",
        json_schema_extra=ui_field_config(order=4, label="Max people"),
    )
    search_levels: int = Field(
        default=2, ge=1, le=3,
        description="How widely blazepose looks for people not yet tracked (every 10 frames): 1 whole frame, 2 + large tiles, 3 + small tiles for small or distant people (slower).",
        json_schema_extra=ui_field_config(order=6, label="Search levels"),
    )


# ---------------------------------------------------------------------------------- drawing
def stroke_width(height: int, width: int, scale: float = 1.0) -> int:
    """Limb half-width and keypoint radius in pixels for an image of ``height`` x ``width``.

    ``REFERENCE_WIDTH_PX`` (4 px) at a short side of ``REFERENCE_SIZE`` (512 px), scaled
    linearly with the short side and by ``scale``; at least 1 px.
    """
    return max(1, round(REFERENCE_WIDTH_PX * scale * min(height, width) / REFERENCE_SIZE))


def draw_skeleton(
    keypoints: np.ndarray,
    height: int,
    width: int,
    min_confidence: float = 0.5,
    line_scale: float = 1.0,
    out: np.ndarray | None = None,
    clear: bool = True,
) -> np.ndarray:
    """Draw an OpenPose skeleton: (H, W, 3) uint8 RGB on black.

    Args:
        keypoints: (18, 3) float: x, y in pixels, confidence; order :data:`KEYPOINTS`.
            A keypoint is drawn when its confidence is > 0 and >= ``min_confidence``; a limb
            when both its ends are.
        height, width: the image size in pixels.
        min_confidence: threshold in [0, 1].
        line_scale: scale of the standard stroke, see :func:`stroke_width`.
        out: an (height, width, 3) uint8 buffer to draw into (cleared first), so a video
            loop allocates no image per frame; a new array when None.
        clear: clear ``out`` first (False: draw over it, for a second person).

    Returns:
        ``out`` (or the new array). Limbs are filled ellipses along each segment in
        :data:`LIMB_COLORS`, drawn in :data:`LIMBS` order; then keypoints are filled circles
        in :data:`COLORS` (facts from controlnet-aux's ``draw_bodypose``).
    """
    if out is None:
        canvas = np.zeros((height, width, 3), np.uint8)
    else:
        canvas = out
        if clear:
            canvas.fill(0)
    stroke = stroke_width(height, width, line_scale)
    threshold = max(float(min_confidence), 1e-6)
    present = [float(c) >= threshold for c in keypoints[:, 2]]
    for i, (a, b) in enumerate(LIMBS):
        if not (present[a] and present[b]):
            continue
        xa, ya = float(keypoints[a, 0]), float(keypoints[a, 1])
        xb, yb = float(keypoints[b, 0]), float(keypoints[b, 1])
        half_length = int(round(math.hypot(xa - xb, ya - yb) / 2))
        angle = int(round(math.degrees(math.atan2(ya - yb, xa - xb))))
        center = (int(round((xa + xb) / 2)), int(round((ya + yb) / 2)))
        polygon = cv2.ellipse2Poly(center, (half_length, stroke), angle, 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, LIMB_COLORS[i])
    for i in range(NUM_KEYPOINTS):
        if present[i]:
            center = (int(round(float(keypoints[i, 0]))), int(round(float(keypoints[i, 1]))))
            cv2.circle(canvas, center, stroke, COLORS[i], thickness=-1)
    return canvas


# ---------------------------------------------------------------------------------- backends
class PoseBackend(Protocol):
    """A pose detector: people's 18 OpenPose keypoints per RGB frame."""

    def detect(self, rgb: np.ndarray, max_people: int = 1, search_levels: int = 2) -> tuple[list[np.ndarray], list[Person]]:
        """For (H, W, 3) uint8 RGB: per person (18, 3) float32 keypoints (x, y px, confidence;
        zeros = none), first person first, and the :class:`Person` records (may be empty)."""
        ...

    def reset(self) -> None:
        """Forget tracking state."""
        ...


def landmarks_to_openpose(landmarks: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """Map MediaPipe Pose's 33 landmarks to the 18 OpenPose keypoints.

    Args:
        landmarks: (33, >=4) float: x, y in pixels, z, visibility (a :attr:`Person.landmarks`).
        width, height: the frame size in pixels.
        out: (18, 3) float32 to fill (a new array when None).

    Returns:
        ``out``: x, y in pixels, confidence = visibility in [0, 1]; a landmark outside the
        frame is (0, 0, 0). The neck is the shoulders' midpoint with the smaller shoulder
        confidence.
    """
    if out is None:
        out = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for k, index in enumerate(MEDIAPIPE_FOR_OPENPOSE):
        if index is None:
            continue
        x, y, visibility = float(landmarks[index, 0]), float(landmarks[index, 1]), float(landmarks[index, 3])
        inside = 0.0 <= x <= width and 0.0 <= y <= height
        out[k] = (x, y, min(max(visibility, 0.0), 1.0) if inside else 0.0)
    out[_NECK, :2] = (out[_R_SHOULDER, :2] + out[_L_SHOULDER, :2]) * 0.5
    out[_NECK, 2] = min(out[_R_SHOULDER, 2], out[_L_SHOULDER, 2])
    out[out[:, 2] <= 0.0] = 0.0
    return out


class BlazePoseBackend:
    """Our BlazePose pipeline (:class:`bridge.vision.blazepose.PoseTracker`): several people, tracked.

    Args:
        num_threads: LiteRT threads per model.
        segmentation: also compute each person's mask (for a later matte stage).

    Raises:
        ModelMissingError: LiteRT or a bundled model is missing; names the fix.
    """

    def __init__(self, num_threads: int = 1, segmentation: bool = True) -> None:
        from bridge.vision.blazepose import PoseTracker

        self.tracker = PoseTracker(num_threads=num_threads, segmentation=segmentation)

    def detect(self, rgb: np.ndarray, max_people: int = 1, search_levels: int = 2) -> tuple[list[np.ndarray], list[Person]]:
        height, width = rgb.shape[:2]
        self.tracker.search_levels = min(max(int(search_levels), 1), 3)
        people = self.tracker.process(rgb, max_people=max_people)
        return [landmarks_to_openpose(p.landmarks, width, height) for p in people], people

    def reset(self) -> None:
        self.tracker.reset()


def _reason(exc: BaseException) -> str:
    """``Type: first line of the message`` of ``exc``, for one-line errors."""
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _import_controlnet_aux(backend: str, module: str) -> Any:
    """Import ``controlnet_aux.<module>`` lazily; a one-line ModelMissingError when it cannot."""
    import importlib

    try:
        return importlib.import_module(f"controlnet_aux.{module}")
    except Exception as exc:  # missing package, or torchvision missing/broken (platform.md)
        raise ModelMissingError(f"pose: backend {backend!r} needs controlnet-aux ({_reason(exc)}); {CONTROLNET_AUX_FIX}") from None


class OpenposeBackend:
    """controlnet-aux ``OpenposeDetector`` (the annotator the OpenPose ControlNets were trained with).

    ``model``: a Hugging Face repo id or a folder with ``body_pose_model.pth``,
    ``hand_pose_model.pth`` and ``facenet.pth`` (default ``lllyasviel/Annotators``).
    The person with the highest total score is kept.

    Raises:
        ModelMissingError: controlnet-aux cannot be imported or the weights cannot be loaded.
    """

    DEFAULT_MODEL = "lllyasviel/Annotators"

    def __init__(self, model: str = "", device: torch.device | str = "cpu") -> None:
        module = _import_controlnet_aux("openpose", "open_pose")
        source = model or self.DEFAULT_MODEL
        try:
            self._detector = module.OpenposeDetector.from_pretrained(source).to(device)
        except Exception as exc:
            raise ModelMissingError(
                f"pose: could not load the OpenPose weights from {source!r} ({_reason(exc)}); "
                "set model= to a folder holding body_pose_model.pth, hand_pose_model.pth and facenet.pth"
            ) from None

    def detect(self, rgb: np.ndarray, max_people: int = 1, search_levels: int = 2) -> tuple[list[np.ndarray], list[Person]]:
        out = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        poses = self._detector.detect_poses(rgb)  # keypoints normalised to [0, 1], None = missing
        if not poses:
            return [], []
        best = max(poses, key=lambda p: float(p.body.total_score))
        h, w = rgb.shape[:2]
        for k, point in enumerate(best.body.keypoints[:NUM_KEYPOINTS]):
            if point is not None and point.x >= 0 and point.y >= 0:
                out[k] = (point.x * w, point.y * h, min(max(float(point.score), 0.0), 1.0))
        return [out], []

    def reset(self) -> None:
        """OpenPose has no temporal state."""


class DWposeBackend:
    """controlnet-aux ``DWposeDetector`` (mmpose/mmdet; whole-body, first 18 points in OpenPose order).

    ``model``: empty (controlnet-aux's default checkpoint URLs) or a folder holding
    :attr:`DET_CHECKPOINT` and :attr:`POSE_CHECKPOINT`. The package's own YOLOX and DWpose
    config files are passed explicitly. The person with the highest mean body score is kept.

    Raises:
        ModelMissingError: controlnet-aux (or mmpose/mmdet) cannot be imported, or the
            checkpoints cannot be loaded.
    """

    DET_CHECKPOINT = "yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth"
    POSE_CHECKPOINT = "dw-ll_ucoco_384.pth"

    def __init__(self, model: str = "", device: torch.device | str = "cpu") -> None:
        module = _import_controlnet_aux("dwpose", "dwpose")
        root = Path(module.__file__).parent
        det_ckpt = pose_ckpt = None
        if model:
            det_ckpt, pose_ckpt = str(Path(model) / self.DET_CHECKPOINT), str(Path(model) / self.POSE_CHECKPOINT)
        try:
            self._detector = module.DWposeDetector(
                det_config=str(root / "yolox_config" / "yolox_l_8xb8-300e_coco.py"),
                det_ckpt=det_ckpt,
                pose_config=str(root / "dwpose_config" / "dwpose-l_384x288.py"),
                pose_ckpt=pose_ckpt,
                device=str(device),
            )
        except Exception as exc:
            raise ModelMissingError(
                f"pose: could not load DWpose ({_reason(exc)}); set model= to a folder holding "
                f"{self.DET_CHECKPOINT} and {self.POSE_CHECKPOINT} (and install mmpose/mmdet)"
            ) from None

    def detect(self, rgb: np.ndarray, max_people: int = 1, search_levels: int = 2) -> tuple[list[np.ndarray], list[Person]]:
        out = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        keypoints, scores = self._detector.pose_estimation(bgr)  # (N, 134, 2) pixels, (N, 134)
        if len(keypoints) == 0:
            return [], []
        best = int(np.argmax(np.asarray(scores)[:, :NUM_KEYPOINTS].mean(axis=1)))
        out[:, :2] = keypoints[best, :NUM_KEYPOINTS]
        out[:, 2] = np.clip(scores[best, :NUM_KEYPOINTS], 0.0, 1.0)
        return [out], []

    def reset(self) -> None:
        """DWpose has no temporal state."""


def load_backend(backend: str, model: str = "", device: torch.device | str = "cpu", threads: int = 1) -> PoseBackend:
    """The pose detector named ``backend`` ("blazepose" or its alias "mediapipe", "openpose", "dwpose").

    ``threads``: LiteRT threads of the blazepose backend.

    Raises:
        ModelMissingError: the backend's package or weights are missing; names the fix.
        ConfigError: ``backend`` is none of those.
    """
    if backend in BLAZEPOSE_NAMES:
        return BlazePoseBackend(num_threads=threads)
    if backend == "openpose":
        return OpenposeBackend(model, device)
    if backend == "dwpose":
        return DWposeBackend(model, device)
    raise ConfigError(f"pose: unknown backend {backend!r}; use blazepose, openpose or dwpose")


# ---------------------------------------------------------------------------------- stage
@register
class PoseStage(Pipeline):
    """Pose preprocessor: camera frame -> OpenPose skeleton image (+ keypoints, + people).

    Input: ``video`` (list of (1, H, W, C) tensors in [0, 255], C = 3 or 4).
    Output: ``{"video": (T, H, W, 3) float32 [0, 1] (uint8 [0, 255] when called with
    ``keep_uint8=True``, the daemon's path), "control_video": the same tensor,
    "keypoints": (T, 18, 3) float32, "people": list (T) of list[Person]}`` (keypoints: x, y
    in pixels, confidence, (0, 0, 0) = not drawn, of the first person; every person's
    skeleton is drawn; ``people``: see :class:`bridge.vision.blazepose.Person`).

    Load parameters: ``backend``, ``model``, ``threads``; runtime: ``min_confidence``,
    ``line_scale``, ``max_people``, ``search_levels`` (keyword arguments of each call).

    Raises:
        ModelMissingError: at construction, when the backend's package or model is missing.
        ConfigError: at construction, an unknown backend.
        ValueError: on a call without frames or with frames that are not (1, H, W, C).
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PoseConfig

    def __init__(self, device: torch.device | str | None = None, backend: str = "blazepose", model: str = "",
                 threads: int = 1, **kwargs: Any) -> None:
        super().__init__(device)
        self.backend_name = backend
        self._backend = load_backend(backend, model, self.device, threads=int(threads))
        self._canvas: np.ndarray | None = None

    def reset(self) -> None:
        self._backend.reset()

    def _canvas_for(self, height: int, width: int) -> np.ndarray:
        if self._canvas is None or self._canvas.shape[:2] != (height, width):
            self._canvas = np.zeros((height, width, 3), np.uint8)
        return self._canvas

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        video = kwargs.get("video")
        if not video:
            raise ValueError("pose stage needs video input: kwargs['video'] = list of (1,H,W,C) frames")
        defaults = PoseConfig.model_fields
        min_confidence = float(kwargs.get("min_confidence", defaults["min_confidence"].default))
        line_scale = float(kwargs.get("line_scale", defaults["line_scale"].default))
        max_people = min(max(int(kwargs.get("max_people", defaults["max_people"].default)), 1), MAX_PEOPLE)
        search_levels = int(kwargs.get("search_levels", defaults["search_levels"].default))
        first = video[0]
        if first.ndim != 4 or first.shape[0] != 1:
            raise ValueError(f"each video frame must be (1,H,W,C); got {tuple(first.shape)}")
        height, width = int(first.shape[1]), int(first.shape[2])
        # the daemon's uint8 path draws straight into the output (bridge.stages.base); Scope gets float [0, 1]
        keep_uint8 = bool(kwargs.get("keep_uint8", False))
        images = torch.empty((len(video), height, width, 3), dtype=torch.uint8 if keep_uint8 else torch.float32)
        keypoints = torch.zeros((len(video), NUM_KEYPOINTS, 3), dtype=torch.float32)
        people_per_frame: list[list[Person]] = []
        images_np = images.numpy()
        threshold = max(min_confidence, 1e-6)
        for t, frame in enumerate(video):
            if tuple(frame.shape[:3]) != (1, height, width):
                raise ValueError(f"all frames of one call must be (1,{height},{width},C); got {tuple(frame.shape)}")
            poses, people = self._backend.detect(to_uint8_rgb(frame[0]), max_people, search_levels)
            people_per_frame.append(people)
            canvas = images_np[t] if keep_uint8 else self._canvas_for(height, width)
            canvas.fill(0)
            for n, raw in enumerate(poses[:max_people]):
                kept = np.where((raw[:, 2] >= threshold)[:, None], raw, 0.0).astype(np.float32)
                if n == 0:
                    keypoints[t].copy_(torch.from_numpy(kept))
                draw_skeleton(kept, height, width, min_confidence, line_scale, out=canvas, clear=False)
            if not keep_uint8:
                np.multiply(canvas, np.float32(1.0 / 255.0), out=images_np[t])  # one pass, uint8 -> float32
        images = images.to(self.device)
        return {"video": images, "control_video": images, "keypoints": keypoints, "people": people_per_frame}
