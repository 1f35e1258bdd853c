"""BlazePose on LiteRT: people in a video, each with 33 landmarks and a mask, tracked frame to frame.

Our own pipeline, written from the BlazePose paper (Bazarevsky et al., "BlazePose: On-device
Real-time Body Pose tracking", arXiv 2006.10204) and MediaPipe's published graphs (the
``.pbtxt`` files of ``mediapipe/modules/pose_landmark`` and ``pose_detection``), running
MediaPipe's models (:mod:`bridge.vision.models`, Apache-2.0):

1. detector (:mod:`bridge.vision.pose_detector`): every person's box and alignment points;
2. region of interest from the alignment points (mid-hip centre, body radius, rotation);
3. landmark model on the warped region (:mod:`bridge.vision.pose_landmarks`): 33
   landmarks with visibility and presence, 2 alignment points, a segmentation mask;
4. tracking (``pose_landmark_cpu.pbtxt``): the next frame's region comes from this frame's
   (smoothed) alignment points, ``pose_landmarks_to_roi.pbtxt``; a person is lost when the
   model's pose flag falls below 0.5; the detector runs on the whole frame while nobody is
   tracked (as MediaPipe does), and, while fewer than ``max_people`` are tracked, a wider
   search runs at most once every ``redetect_interval`` frames: the whole frame plus
   overlapping square tiles (:func:`search_tiles`). MediaPipe's detector sees the frame
   letterboxed to 224x224 and tends to report only the most prominent person; on a tile
   the others are larger and stand alone (our addition; measured on zidane.jpg: 0 people
   on the whole frame, both men with the tiles);
5. smoothing (``pose_landmark_filtering.pbtxt``): One Euro filter on the landmarks
   (min cutoff 0.05 Hz, beta 80, derivative cutoff 1 Hz; switchable, ``smooth``) and,
   always, on the alignment points that place the next region (0.01, 10, 1), speed relative
   to the person's size (the alignment region's side in pixels); visibility low-passed
   with alpha 0.1.

MediaPipe's Pose follows one person; here every tracked person has their own filters and
``track_id``. Not reproduced: MediaPipe's temporal smoothing of the image-space mask
(``pose_segmentation_filtering.pbtxt``), left to the matte stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from bridge.vision.one_euro import LowPass, OneEuroFilter
from bridge.vision.pose_detector import Detection, PoseDetector, alignment_roi
from bridge.vision.pose_landmarks import MIN_PRESENCE, PoseLandmarker

__all__ = ["Detection", "Person", "PoseTracker", "paste_masks", "same_person", "search_tiles", "MAX_PEOPLE"]

#: Bounds of ``max_people``.
MAX_PEOPLE = 8
#: One Euro constants (``pose_landmark_filtering.pbtxt``): landmarks and alignment points.
LANDMARK_FILTER = dict(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0)
AUX_FILTER = dict(min_cutoff=0.01, beta=10.0, derivate_cutoff=1.0)
#: Visibility smoothing (``VisibilitySmoothingCalculator`` low_pass_filter alpha).
VISIBILITY_ALPHA = 0.1
#: Frame period assumed when no timestamp is given (MediaPipe's solutions API: 30 fps).
DEFAULT_PERIOD_S = 1.0 / 30.0
#: A detection (or a track) whose region's centre (the mid-hip) lies closer to a tracked
#: person's than this fraction of the smaller region's side is that person. (Regions overlap
#: a lot between different people in close-ups, where they are ~3x the head's width, so
#: overlap is not the test.)
SAME_PERSON_DISTANCE = 0.25


@dataclass
class Person:
    """One tracked person in one frame.

    Attributes:
        landmarks: (33, 5) float32: x, y in image pixels, z in pixels on x's scale (MediaPipe's
            depth, smaller = nearer, 0 at the hips), visibility in [0, 1], presence in [0, 1].
            Landmark order: MediaPipe Pose (0 nose ... 11/12 shoulders, 23/24 hips, 32 right foot index).
        score: the landmark model's pose flag, probability that the region holds a person, [0, 1].
        roi: the region the landmarks were found in: (cx, cy, w, h) in pixels, rotation in
            radians (clockwise on the image).
        mask: (256, 256) float32 person probability in [0, 1] in crop pixels, or None when
            the tracker runs without segmentation; :attr:`crop_to_image` maps it to the image.
        crop_to_image: (2, 3) float64 affine from crop pixels (0..256) to image pixels.
        track_id: stable per tracked person, counting from 1 for each tracker.
    """

    landmarks: np.ndarray
    score: float
    roi: tuple[float, float, float, float, float]
    mask: np.ndarray | None
    crop_to_image: np.ndarray
    track_id: int


def paste_masks(people: list[Person], height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """The people's masks in image pixels: (height, width) float32, per-pixel max, 0 outside all.

    Each mask is warped by its :attr:`Person.crop_to_image` (bilinear, zero outside the crop;
    MediaPipe ``WarpAffineCalculator`` with ``BORDER_ZERO``). People without a mask add nothing.
    ``out``: a (height, width) float32 buffer to fill (reused between frames), else a new one.
    """
    if out is None:
        out = np.zeros((height, width), np.float32)
    else:
        out.fill(0.0)
    scratch = None
    for person in people:
        if person.mask is None:
            continue
        if scratch is None:
            scratch = np.empty((height, width), np.float32)
        cv2.warpAffine(person.mask, np.asarray(person.crop_to_image, np.float64), (width, height), dst=scratch,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        np.maximum(out, scratch, out=out)
    return out


def search_tiles(height: int, width: int, levels: int = 2) -> list[tuple[int, int, int]]:
    """Square tiles ``(x0, y0, side)`` in pixels for the detector's wider search.

    Level 1 is the whole frame alone (no tiles). Level 2 adds squares of the frame's short
    side along its long side, overlapping by half (2 for 4:3 and 16:9, 3 for wider). Level 3
    adds squares of half the short side over the whole frame, overlapping by half (for
    small people; 15 tiles at 640x480, each one detector run). Tiles never leave the frame.
    """
    tiles: list[tuple[int, int, int]] = []
    short = min(height, width)
    for level in range(2, max(1, int(levels)) + 1):
        side = short // (2 ** (level - 2))
        if side < 32 or (level == 2 and height == width):
            continue
        step = max(side // 2, 1)
        xs = list(range(0, width - side + 1, step))
        ys = list(range(0, height - side + 1, step))
        if xs[-1] != width - side:
            xs.append(width - side)
        if ys[-1] != height - side:
            ys.append(height - side)
        tiles.extend((x, y, side) for y in ys for x in xs)
    return tiles


def same_person(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether regions ``a`` and ``b`` ((cx, cy, w, h, rotation), pixels) frame the same person.

    True when their centres are closer than :data:`SAME_PERSON_DISTANCE` times the smaller side.
    """
    side = min(max(a[2], a[3]), max(b[2], b[3]))
    return math.hypot(a[0] - b[0], a[1] - b[1]) < SAME_PERSON_DISTANCE * side


@dataclass
class _Track:
    """A tracked person: the region for the next frame and the smoothing state."""

    track_id: int
    roi: tuple[float, float, float, float, float]
    landmark_filter: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(**LANDMARK_FILTER))
    aux_filter: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(**AUX_FILTER))
    visibility: LowPass = field(default_factory=lambda: LowPass(VISIBILITY_ALPHA))
    aux_visibility: LowPass = field(default_factory=lambda: LowPass(VISIBILITY_ALPHA))


class PoseTracker:
    """People's poses in a video: detect, track, smooth (see the module docstring).

    Args:
        num_threads: LiteRT CPU threads for each model, >= 1.
        segmentation: return each person's mask (:attr:`Person.mask`).
        smooth: One Euro smoothing of the returned landmarks and their visibility between
            frames (MediaPipe's default: on). The alignment points that place the next
            frame's region are smoothed either way, as in MediaPipe's graph.
        redetect_interval: while fewer than ``max_people`` people are tracked, the wider
            search (whole frame + tiles) runs at most once every this many frames (>= 1).
        search_levels: how wide that search is, see :func:`search_tiles` (1: the whole
            frame only, as MediaPipe; 2, the default: + short-side squares; 3: + half-size
            squares, for small people, about 15 more detector runs per search).
        min_detection_score: detector threshold (MediaPipe: 0.5).

    Attributes:
        detector_runs: how many times the detector has run (for tests and benchmarks).

    Raises:
        ModelMissingError: LiteRT or a model file is missing.

    Not thread-safe; one tracker per video stream.
    """

    def __init__(self, num_threads: int = 1, segmentation: bool = True, smooth: bool = True,
                 redetect_interval: int = 10, min_detection_score: float = 0.5, search_levels: int = 2) -> None:
        self.detector = PoseDetector(num_threads, min_score=min_detection_score)
        self.landmarker = PoseLandmarker(num_threads, segmentation=segmentation)
        self.smooth = bool(smooth)
        self.redetect_interval = max(1, int(redetect_interval))
        self.search_levels = max(1, int(search_levels))
        self.detector_runs = 0
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frames_since_detect = self.redetect_interval  # the first search may be wide
        self._last_time: float | None = None

    def reset(self) -> None:
        """Forget every tracked person and the smoothing state; the next frame runs the detector."""
        self._tracks = []
        self._frames_since_detect = self.redetect_interval
        self._last_time = None

    @property
    def tracked(self) -> int:
        """How many people are tracked into the next frame."""
        return len(self._tracks)

    def detect(self, rgb: np.ndarray, levels: int = 1) -> list[Detection]:
        """Run the detector alone on ``rgb`` ((H, W, 3) uint8): every person, highest score first.

        ``levels``: 1, the whole frame (one detector run, MediaPipe's way); 2 or 3, also on
        the tiles of :func:`search_tiles`; a tile's detection is added when it is nobody
        found already (:func:`same_person`; the whole frame's detections come first, then
        the tiles' by score). Each :class:`~bridge.vision.pose_detector.Detection` has
        ``score``, ``box`` (xmin, ymin, xmax, ymax px), ``keypoints`` ((4, 2) px) and
        ``roi()``, in image pixels. No tracking state changes; counts one search in
        :attr:`detector_runs`.
        """
        self.detector_runs += 1
        found = self.detector(rgb)  # distinct already (NMS); these keep MediaPipe's regions
        extra: list[Detection] = []
        for x0, y0, side in search_tiles(rgb.shape[0], rgb.shape[1], levels):
            for detection in self.detector(np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side])):
                detection.box += np.array([x0, y0, x0, y0], np.float32)
                detection.keypoints += np.array([x0, y0], np.float32)
                extra.append(detection)
        if not extra:
            return found
        rois = [d.roi() for d in found]
        for detection in sorted(extra, key=lambda d: -d.score):
            roi = detection.roi()
            if not any(same_person(roi, other) for other in rois):
                found.append(detection)
                rois.append(roi)
        return sorted(found, key=lambda d: -d.score)

    def process(self, rgb: np.ndarray, max_people: int = 1, timestamp: float | None = None,
                detections: list[Detection] | None = None) -> list[Person]:
        """The people in this frame of a video.

        Args:
            rgb: (H, W, 3) uint8 RGB, C-contiguous.
            max_people: how many people to follow, clamped to 1..:data:`MAX_PEOPLE`.
            timestamp: seconds, increasing; default: the previous one + 1/30 s.
            detections: ``self.detect(rgb, self.search_levels)`` when the caller ran it on
                this very frame already (it is not run again); None: run when due.

        Returns:
            Up to ``max_people`` :class:`Person`, oldest track first; empty when nobody is found.

        Raises:
            ValueError: ``rgb`` is not (H, W, 3) uint8.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"pose tracker needs (H, W, 3) uint8 RGB; got {rgb.shape} {rgb.dtype}")
        max_people = min(max(int(max_people), 1), MAX_PEOPLE)
        if timestamp is None:
            timestamp = (self._last_time + DEFAULT_PERIOD_S) if self._last_time is not None else 0.0
        self._last_time = float(timestamp)
        del self._tracks[max_people:]

        self._frames_since_detect += 1
        found: list[Detection] = []
        if len(self._tracks) < max_people and self._frames_since_detect >= self.redetect_interval:
            self._frames_since_detect = 0
            found = self.detect(rgb, self.search_levels) if detections is None else detections
        elif not self._tracks:
            found = self.detect(rgb) if detections is None else detections
        if found:
            for detection in found:
                if len(self._tracks) >= max_people:
                    break
                roi = detection.roi()
                if roi[2] <= 1.0 or any(same_person(roi, t.roi) for t in self._tracks):
                    continue
                self._tracks.append(_Track(self._next_id, roi))
                self._next_id += 1

        people: list[Person] = []
        kept: list[_Track] = []
        for track in self._tracks:
            result = self.landmarker(rgb, track.roi)
            if result.presence < MIN_PRESENCE:
                continue
            landmarks, aux = self._smooth(track, result.landmarks, result.aux, float(timestamp))
            next_roi = alignment_roi(aux[0, :2], aux[1, :2])
            if next_roi[2] <= 1.0 or any(same_person(next_roi, t.roi) for t in kept):
                continue  # collapsed, or drifted onto a person already tracked
            people.append(Person(landmarks, result.presence, track.roi, result.mask, result.crop_to_image,
                                 track.track_id))
            track.roi = next_roi
            kept.append(track)
        self._tracks = kept
        return people

    def _smooth(self, track: _Track, landmarks: np.ndarray, aux: np.ndarray, timestamp: float) -> tuple[np.ndarray, np.ndarray]:
        """One Euro on x, y, z and a low-pass on visibility, with the speed relative to the person's size.

        The alignment points always; the landmarks when :attr:`smooth`.
        """
        raw_roi = alignment_roi(aux[0, :2], aux[1, :2], scale=1.0)
        object_scale = raw_roi[2]  # the alignment square's side (width = height), pixels
        value_scale = 1.0 / object_scale if object_scale > 1e-6 else 0.0
        lm = landmarks.copy()
        ax = aux.copy()
        if value_scale > 0.0:
            if self.smooth:
                lm[:, :3] = track.landmark_filter(landmarks[:, :3], timestamp, value_scale)
            ax[:, :3] = track.aux_filter(aux[:, :3], timestamp, value_scale)
        if self.smooth:
            lm[:, 3] = track.visibility(landmarks[:, 3])
        ax[:, 3] = track.aux_visibility(aux[:, 3])
        return lm.astype(np.float32), ax.astype(np.float32)
