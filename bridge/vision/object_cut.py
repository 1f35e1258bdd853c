"""Object cut: take what a person holds or leans on (a camera, a tripod) out of a person matte.

The selfie model marks the subject of a selfie, and a camera held to the eye or the tripod
under it is part of that subject for it: on camera.png (a man bent over a camera on a
tripod) its probability over the tripod head is 0.6-0.9. The BlazePose landmark model's
person mask (the one MediaPipe Pose returns with ``enable_segmentation``) is a mask of the
*body*: it leaves the camera and the tripod out. Where the two disagree, the cut sides with
the pose model, but only where the selfie model itself is unsure:

a pixel of the selfie probability ``prob`` goes to 0 when

* its probability lies in (:data:`MIN_PROBABILITY`, ``below``): the selfie model is unsure
  (a confident selfie pixel is never cut: the pose mask is coarse along the body's edge
  and misses a body cut by the frame edge);
* the pose mask there is below :data:`POSE_BACKGROUND`, and the pixel is more than
  :data:`MARGIN` of the frame's long side away from the pose mask's person (the pose
  mask is blurry along the edge; hair and fingers stay);
* its piece lies wholly inside the landmark runs' crops (the pose model saw all of it);
* and its connected piece of such pixels touches the background (selfie probability at
  most :data:`MIN_PROBABILITY`; a piece enclosed by confident person is a hole, and
  cutting it would riddle a held helmet), does not touch the frame's edge (a body cut by
  the frame edge is where the pose model is weakest: camera.png's coat, bottom left), and
  is at most :data:`MAX_PIECE` of the pose masks' person area.

Measured on the development set (IoU against ``tests/data/mattes``, default preset, with
the cut at ``below`` = 0.9 against without it): camera 0.9427 -> 0.960, carphone 0.9724 ->
0.9747, bus 0.8225 -> 0.8274, zidane unchanged; on 18 flipped, shrunk, cropped and widened
variants of the stills never worse by more than 0.0001 (``avatar-bridge bench alpha
--variants --compare object_cut=0``, ``docs/benchmarks.md``).

The pose masks come from the people the caller already has (the pose stage's or the alpha
stage's own tracker, :class:`~bridge.vision.blazepose.Person`), and for a selfie region no
such person covers, from one landmark model run on a square around the region (the
region's box side times :data:`REGION_ROI_SCALE`, no rotation), at most
:data:`MAX_REGIONS` regions, on every ``CUT_INTERVAL_FACTOR * interval``-th frame; in
between, the map of where a cut may happen, made on that frame, is moved by the image motion
over the people's and regions' box (:func:`image_shift`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import cv2
import numpy as np

#: The pose mask below which a pixel is the pose model's background.
POSE_BACKGROUND = 0.15
#: Selfie probability at or below which a pixel is background already: nothing to cut there,
#: and the background a cut piece must touch.
MIN_PROBABILITY = 0.1
#: Distance from the pose mask's person (mask >= :data:`POSE_BACKGROUND`) within which
#: nothing is cut, as a fraction of the frame's long side (3 px at 320x240). Measured on a
#: first version (no piece rules): 0 trims zidane's shoulders (IoU -0.006); 0.01 and 0.02
#: gave camera 0.957 / 0.957, bus 0.829 / 0.825, carphone 0.975 / 0.973.
MARGIN = 0.01
#: Side of the landmark model's square region around a selfie region, times the region's
#: longer side (the person check's region, :data:`bridge.stages.alpha.CHECK_ROI_SCALE`).
REGION_ROI_SCALE = 1.5
#: Values of the cut map: far from the pose masks' person inside a landmark crop (a cut may
#: happen) and outside all crops (a piece reaching there is kept); 0 is near the person.
SEEN = 1
UNSEEN = 2
#: Largest piece cut, as a fraction of the pose masks' person area (mask >= 0.5): a larger
#: one is more likely a second person the pose masks miss (two people in one selfie region
#: while the tracker follows one) than a held object.
MAX_PIECE = 0.15
#: Most selfie regions given their own landmark run a frame (largest first).
MAX_REGIONS = 2
#: A region wider than this times its height holds several people side by side
#: (:data:`bridge.vision.selfie.SPLIT_ASPECT`); one landmark run sees one of them, so such
#: a region gets no run (and no cut).
WIDE_REGION = 1.3
#: Smallest pose flag of a region's landmark run whose mask is used.
MIN_PRESENCE = 0.5
#: :func:`image_shift`: the smallest phase-correlation peak that is trusted, and the side
#: (px) of the square a box is resampled to (0.1 ms a call instead of 0.9 ms for a 200 px
#: box; the shift comes back to within about a pixel of the box's own scale).
MIN_RESPONSE = 0.05
SHIFT_SIDE = 64
#: The region landmark runs happen on every ``CUT_INTERVAL_FACTOR * interval``-th frame
#: (a held object stays in the hand; in between the masks follow the image motion).
CUT_INTERVAL_FACTOR = 2

Box = tuple[float, float, float, float]  # x, y, w, h in pixels


def image_shift(before: np.ndarray, now: np.ndarray, box: Box) -> tuple[float, float]:
    """The translation (dx, dy) in pixels of the image content inside ``box`` from ``before`` to ``now``.

    ``before``, ``now``: (H, W) uint8 luma of one size; ``box``: (x, y, w, h) pixels, cut to
    the frame. Phase correlation (``cv2.phaseCorrelate``, Hann window; C. D. Kuglin and
    D. C. Hines, "The phase correlation image alignment method", 1975), on the box resampled
    to :data:`SHIFT_SIDE` px square. (0, 0) when the box is under 8 px a side, the peak is weak (response below :data:`MIN_RESPONSE`) or the
    shift is beyond half the box.
    """
    height, width = now.shape[:2]
    x, y, w, h = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(math.ceil(x + w))), min(height, int(math.ceil(y + h)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0, 0.0
    # both patches resampled to SHIFT_SIDE x SHIFT_SIDE (a power of two: OpenCV pads an
    # input to its optimal DFT size, and at an odd one it reports half a pixel of motion
    # between two identical patches)
    size = (SHIFT_SIDE, SHIFT_SIDE)
    a = cv2.resize(before[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(now[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    (dx, dy), response = cv2.phaseCorrelate(a, b, _hann())
    if response < MIN_RESPONSE or abs(dx) > SHIFT_SIDE / 2 or abs(dy) > SHIFT_SIDE / 2:
        return 0.0, 0.0
    return float(dx) * (x1 - x0) / SHIFT_SIDE, float(dy) * (y1 - y0) / SHIFT_SIDE


_HANN: list[np.ndarray] = []


def _hann() -> np.ndarray:
    """The (SHIFT_SIDE, SHIFT_SIDE) float32 Hann window of :func:`image_shift` (made once)."""
    if not _HANN:
        _HANN.append(cv2.createHanningWindow((SHIFT_SIDE, SHIFT_SIDE), cv2.CV_32F))
    return _HANN[0]


class ObjectCut:
    """Cut held objects out of a selfie probability with pose masks (module docstring).

    Args:
        landmarker: a callable returning a :class:`~bridge.vision.pose_landmarks.PoseLandmarker`
            (made on first use; shared with the stage's tracker).

    Not thread-safe; keeps the last region masks and scratch buffers between frames.
    """

    def __init__(self, landmarker: Callable[[], Any]) -> None:
        self._landmarker = landmarker
        self._luma: np.ndarray | None = None  # luma of the last run frame
        self._cuttable: np.ndarray | None = None  # (h, w) uint8 SEEN / UNSEEN / 0 (run frame)
        self._box: Box | None = None  # the people's and regions' union box on the run frame
        self._body = 0.0  # the pose masks' person area (mask >= 0.5), pixels
        self._frame = 0
        self._buffers: dict[str, np.ndarray] = {}
        self._kernel = np.ones((3, 3), np.uint8)
        self.runs = 0  # landmark model runs made by the cut (for tests and benchmarks)

    def reset(self) -> None:
        """Forget the last region masks (a new stream)."""
        self._luma = None
        self._cuttable = None
        self._box = None
        self._body = 0.0
        self._frame = 0

    def _buf(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype)
        return buf

    def __call__(self, small: np.ndarray, prob: np.ndarray, regions: list[Box],
                 people: list[tuple[Box, np.ndarray, np.ndarray]], below: float, interval: int = 1,
                 luma: np.ndarray | None = None) -> np.ndarray:
        """Cut ``prob`` in place and return it.

        Args:
            small: (h, w, 3) uint8 RGB, the frame ``prob`` belongs to.
            prob: (h, w) float32 person probability in [0, 1] (selfie, zoom, pose fusion).
            regions: the person regions of ``prob`` confirmed as people, (x, y, w, h) px.
            people: the pose masks the caller has for this frame (pose stage, own tracker):
                ``(region box (x, y, w, h), (256, 256) float32 mask, (2, 3) crop-to-image
                affine)``, all in ``small``'s pixels; they are used, and a selfie region
                they cover (half its box inside theirs) gets no landmark run of its own.
            below: selfie probability below which a pixel may be cut, in [0, 1]; 0 = off.
            interval: the region landmark runs happen on every
                ``CUT_INTERVAL_FACTOR * interval``-th frame.
            luma: ``small``'s (h, w) uint8 luma when the caller has it (else it is made here).
        """
        if below <= MIN_PROBABILITY or not regions:
            return prob
        h, w = prob.shape
        if luma is None:
            luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY, dst=self._buf("luma", (h, w), np.uint8))
        run = (self._frame % (CUT_INTERVAL_FACTOR * max(1, int(interval))) == 0 or self._cuttable is None
               or self._cuttable.shape != (h, w))
        self._frame += 1
        if run:
            self._prepare(small, luma, regions, people)
            cuttable = self._cuttable
        else:
            dx, dy = image_shift(self._luma, luma, self._box) if self._box is not None else (0.0, 0.0)
            cuttable = self._cuttable
            if dx != 0.0 or dy != 0.0:
                cuttable = cv2.warpAffine(self._cuttable, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), (w, h),
                                          dst=self._buf("moved", (h, w), np.uint8), flags=cv2.INTER_NEAREST,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=UNSEEN)
        if self._body <= 0.0:
            return prob
        unsure = cv2.bitwise_and(cv2.compare(prob, MIN_PROBABILITY, cv2.CMP_GT), cv2.compare(prob, float(below), cv2.CMP_LT))
        cut = cv2.bitwise_and(cv2.compare(cuttable, 0, cv2.CMP_GT), unsure)
        if not cv2.countNonZero(cv2.bitwise_and(cv2.compare(cuttable, SEEN, cv2.CMP_EQ), unsure)):
            return prob
        count, labels, stats, _ = cv2.connectedComponentsWithStats(cut, connectivity=8)
        keep = np.zeros(count, bool)
        # kept: a piece at the frame's edge, or reaching out of the pose model's crops (it saw
        # only part of it)
        keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
        keep[labels[cuttable == UNSEEN]] = True
        keep |= stats[:, 4] > MAX_PIECE * self._body
        # a piece enclosed by confident person (no background pixel next to it) is a hole, not
        # an object's edge: cutting it would leave holes in a held helmet
        outside = cv2.dilate(cv2.compare(prob, MIN_PROBABILITY, cv2.CMP_LE), self._kernel)
        touching = np.zeros(count, bool)
        touching[labels[outside > 0]] = True
        keep |= ~touching
        keep[0] = True
        prob[~keep[labels]] = 0.0
        return prob

    def _prepare(self, small: np.ndarray, luma: np.ndarray, regions: list[Box],
                 people: list[tuple[Box, np.ndarray, np.ndarray]]) -> None:
        """A run frame: landmark runs on the uncovered regions, then the map of where a cut
        may happen (inside a crop, far from the pose masks' person) and the person's area."""
        h, w = luma.shape
        uncovered = [r for r in regions if not any(_inside(r, box) >= 0.5 for box, _, _ in people)]
        uncovered = [r for r in uncovered if r[2] <= WIDE_REGION * r[3]][:MAX_REGIONS]
        placed = [(mask, np.asarray(matrix, np.float64)) for _, mask, matrix in people]
        boxes = [box for box, _, _ in people]
        for box in uncovered:
            x, y, bw, bh = box
            side = REGION_ROI_SCALE * max(bw, bh)
            result = self._landmarker()(small, (x + bw / 2, y + bh / 2, side, side, 0.0))
            self.runs += 1
            if result.mask is not None and result.presence >= MIN_PRESENCE:
                placed.append((result.mask, np.asarray(result.crop_to_image, np.float64)))
                boxes.append(box)
        if self._luma is None or self._luma.shape != (h, w):
            self._luma = np.empty((h, w), np.uint8)
        np.copyto(self._luma, luma)
        self._cuttable = self._buf("cuttable", (h, w), np.uint8)
        self._cuttable.fill(0)
        self._body = 0.0
        self._box = None
        if not placed:
            return
        x0 = min(b[0] for b in boxes)
        y0 = min(b[1] for b in boxes)
        x1 = max(b[0] + b[2] for b in boxes)
        y1 = max(b[1] + b[3] for b in boxes)
        self._box = (x0, y0, x1 - x0, y1 - y0)
        pose = self._buf("pose", (h, w), np.float32)
        cover = self._buf("cover", (h, w), np.uint8)
        scratch = self._buf("scratch", (h, w), np.float32)
        seen = self._buf("seen", (h, w), np.uint8)
        pose.fill(0.0)
        cover.fill(0)
        ones = self._buf("ones", placed[0][0].shape, np.uint8)
        ones.fill(1)
        for mask, matrix in placed:
            cv2.warpAffine(mask, matrix, (w, h), dst=scratch, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            np.maximum(pose, scratch, out=pose)
            cv2.warpAffine(ones, matrix, (w, h), dst=seen, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            np.maximum(cover, seen, out=cover)
        background = cv2.compare(pose, POSE_BACKGROUND, cv2.CMP_LT)  # 255 where the pose model sees no person
        distance = cv2.distanceTransform(background, cv2.DIST_L2, 3)
        far = cv2.compare(distance, MARGIN * max(h, w), cv2.CMP_GT)
        # SEEN where far inside a crop, UNSEEN where far outside all crops, 0 near the person
        np.subtract(UNSEEN, cover, out=self._cuttable)  # cover is 0 / 1: UNSEEN outside, SEEN inside
        cv2.bitwise_and(self._cuttable, far, dst=self._cuttable)
        self._body = float(np.count_nonzero(cv2.compare(pose, 0.5, cv2.CMP_GE)))


def _inside(a: Box, b: Box) -> float:
    """The share of box ``a`` inside box ``b`` (both (x, y, w, h))."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-9, a[2] * a[3])
