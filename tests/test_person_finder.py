"""The person finder's check budget: a failed check must not hold back a different person.

The finder runs with fake models that follow the real call signatures (the detector is
called with an (h, w, 3) uint8 image and returns detections, the landmark model with an
image and a (cx, cy, w, h, rotation) ROI and returns ``presence`` and (33, >= 2)
landmarks in image pixels), so the test is about which proposals get checked and when.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bridge.vision import person_finder
from bridge.vision.person_finder import PersonFinder

H, W = 120, 160
#: One player alone, and the region of two players side by side that holds them.
PLAYER = (70, 20, 28, 60)
PAIR = (30, 20, 64, 60)


class FakeLandmarker:
    """Sees a person when the ROI's centre lies inside ``person`` (x, y, w, h)."""

    def __init__(self, person: tuple[int, int, int, int]) -> None:
        self.person = person
        self.rois: list[tuple[float, ...]] = []

    def __call__(self, image: np.ndarray, roi: tuple[float, ...]) -> SimpleNamespace:
        self.rois.append(roi)
        x, y, w, h = self.person
        inside = x <= roi[0] <= x + w and y <= roi[1] <= y + h
        lm = np.zeros((33, 5), np.float32)
        lm[:, 0] = np.linspace(x + 2, x + w - 2, 33)
        lm[:, 1] = np.linspace(y + 2, y + h - 2, 33)
        return SimpleNamespace(presence=1.0 if inside else 0.0, landmarks=lm)


def _mask(box: tuple[int, int, int, int]) -> np.ndarray:
    prob = np.zeros((H, W), np.float32)
    x, y, w, h = box
    prob[y:y + h, x:x + w] = 1.0
    return prob


def _finder(landmarker) -> PersonFinder:
    """A finder whose detector finds nobody and whose general model sees nothing: only the
    whole-frame regions given to :func:`_find` propose, ``landmarker`` checks."""
    models = SimpleNamespace(detector=lambda image: [], landmarker=landmarker)
    return PersonFinder(lambda: models, lambda: (lambda rgb: np.zeros((H, W), np.float32)))


def _find(finder: PersonFinder, region):
    """One frame (flat grey) whose whole-frame pass sees ``region``."""
    frame = np.full((H, W, 3), 90, np.uint8)
    return finder.find(frame, frame, _mask(region), np.full((H, W), 90, np.uint8), 0.001, [])


def test_a_failed_check_of_two_people_does_not_hold_back_one_of_them():
    """A region of two players fails the check (the landmark model, centred between them,
    sees nobody); a few frames later the whole-frame pass sees one of them alone (IoU 0.35
    with the pair's region): that player is checked on the next scan frame and becomes a
    track, instead of waiting out the retry time of the failed pair."""
    landmarker = FakeLandmarker(PLAYER)
    finder = _finder(landmarker)
    # scan frames are 1, 1 + SCAN_INTERVAL, ...: the pair is checked on the first
    _find(finder, PAIR)
    assert landmarker.rois and not finder.tracks
    for _ in range(person_finder.SCAN_INTERVAL):
        tracks, _ = _find(finder, PLAYER)
    assert person_finder.SCAN_INTERVAL + 1 < person_finder.CHECK_RETRY
    assert len(tracks) == 1
    x, y, w, h = tracks[0].box
    assert abs((x + w / 2) - (PLAYER[0] + PLAYER[2] / 2)) < 3 and abs((y + h / 2) - (PLAYER[1] + PLAYER[3] / 2)) < 3


def test_the_same_failed_proposal_waits_for_its_retry():
    """The pair's own region, seen again, is not checked again before the retry time
    (the check budget goes to proposals not checked yet)."""
    landmarker = FakeLandmarker(PLAYER)
    finder = _finder(landmarker)
    _find(finder, PAIR)
    runs = len(landmarker.rois)
    for _ in range(person_finder.CHECK_RETRY - 2):
        _find(finder, PAIR)
    assert len(landmarker.rois) == runs


class WiderLandmarker(FakeLandmarker):
    """Sees the person only on a square at least ``side`` pixels wide (a region that is part
    of a body: the first square cuts the head and legs), with landmarks of ``visibility``."""

    def __init__(self, person, side: float, visibility: float, presence: float = 0.9) -> None:
        super().__init__(person)
        self.side, self.visibility, self.flag = side, visibility, presence

    def __call__(self, image, roi):
        result = super().__call__(image, roi)
        result.landmarks[:, 3] = self.visibility
        result.presence = self.flag if result.presence and roi[2] >= self.side else 0.0
        return result


def _one_scan(landmarker, region):
    return _find(_finder(landmarker), region)[0]


def test_a_region_that_is_part_of_a_person_is_confirmed_by_a_wider_look():
    """The whole-frame pass sees a player's torso only (a dark stage): the first square,
    1.5x the torso, cuts the body; the wider look finds the player, who becomes a track."""
    torso = (74, 40, 20, 24)
    first = person_finder.CHECK_ROI_SCALE * max(torso[2:])
    tracks = _one_scan(WiderLandmarker(PLAYER, side=first * 1.2, visibility=0.8), torso)
    assert len(tracks) == 1
    # a band player whom the first square cut: flag 0.69, landmarks well seen (0.89)
    assert len(_one_scan(WiderLandmarker(PLAYER, side=first * 1.2, visibility=0.89, presence=0.69), torso)) == 1
    # refused: landmarks mostly unseen (coffee.png's cup: flag 0.87, visibility 0.27) or a low
    # flag (bikes.mp4's taxi sign: 0.57 with 0.65)
    assert not _one_scan(WiderLandmarker(PLAYER, side=first * 1.2, visibility=0.27, presence=0.87), torso)
    assert not _one_scan(WiderLandmarker(PLAYER, side=first * 1.2, visibility=0.65, presence=0.57), torso)


def test_a_track_grows_over_its_own_person_pixels_but_not_over_a_neighbour():
    """A landmark box stops at the head; the matte shows hair above it, joined to the
    person, and a second person beside them, not joined. The box takes in the hair (a
    margin's worth each frame, until the hair ends) and never the neighbour."""
    finder = PersonFinder(lambda: None, lambda: None)
    box = (60.0, 40.0, 20.0, 40.0)  # the person's landmark box
    finder._confirm(box, seen_whole=False)
    prob = np.zeros((H, W), np.float32)
    prob[40:80, 60:80] = 1.0  # the body
    prob[22:40, 64:76] = 1.0  # a tall hair-do, joined to the head
    prob[30:80, 84:100] = 1.0  # somebody beside them, 4 px apart
    for _ in range(4):
        finder.follow(prob)
    x, y, w, h = finder.tracks[0].box
    assert y == 22.0 and y + h == 80.0, "the box reaches the top of the hair"
    assert x + w <= 82.0, "the neighbour is not taken in"
    # however much joins it, a box grows to at most GROW_LIMIT times what a source gave it
    prob[0:H, 60:84] = 1.0
    for _ in range(20):
        finder.follow(prob)
    x, y, w, h = finder.tracks[0].box
    assert w * h <= person_finder.GROW_LIMIT * box[2] * box[3]


def test_a_speck_of_the_whole_frame_pass_does_not_cut_up_another_sources_person():
    """The whole-frame pass marks a bar across a walker's waist, too small to be a proposal
    of its own (below ``min_person``); the general model sees the whole walker. The walker
    is proposed and checked whole (a square around all of them), not as the pieces above
    and below the bar: on vtest.avi the motion source's walker lost its torso to such a
    speck and its sliver failed the check."""
    landmarker = FakeLandmarker(PLAYER)
    general = _mask(PLAYER)
    models = SimpleNamespace(detector=lambda image: [], landmarker=landmarker)
    finder = PersonFinder(lambda: models, lambda: (lambda rgb: general))
    x, y, w, h = PLAYER
    speck = np.zeros((H, W), np.float32)
    speck[y + 28:y + 32, x:x + w] = 1.0  # 112 px, below min_person 0.01 (192 px)
    frame = np.full((H, W, 3), 90, np.uint8)
    tracks, _ = finder.find(frame, frame, speck, np.full((H, W), 90, np.uint8), 0.01, [])
    cx, cy, side = landmarker.rois[0][:3]
    assert (cx, cy) == (x + w / 2, y + h / 2)
    assert side == person_finder.CHECK_ROI_SCALE * h
    assert len(tracks) == 1


def test_a_detection_inside_a_region_that_failed_is_checked_on_its_own(monkeypatch):
    """Two men side by side make one whole-frame region; its check (centred between them)
    fails, and it is held back for its retry time. The pose detector finds one man's face
    inside that region: the detection is checked with its own ROI and the man is followed,
    instead of being skipped as "the region's person" (on zidane.jpg widened 1.5x nothing
    was matted for 30 frames)."""
    monkeypatch.setattr(person_finder, "search_tiles", lambda height, width, levels: [])  # the whole frame only
    face = SimpleNamespace(score=0.9, box=(78.0, 22.0, 90.0, 34.0), roi=lambda: (84.0, 50.0, 40.0, 40.0, 0.0))
    landmarker = FakeLandmarker(PLAYER)
    models = SimpleNamespace(detector=lambda image: [face], landmarker=landmarker)
    finder = PersonFinder(lambda: models, lambda: (lambda rgb: np.zeros((H, W), np.float32)))
    _find(finder, PAIR)  # scan frame: the pair's region fails (and its wider look)
    assert not finder.tracks and len(landmarker.rois) == 2
    for _ in range(person_finder.SCAN_INTERVAL):
        tracks, _ = _find(finder, PAIR)
    assert landmarker.rois[-1] == (84.0, 50.0, 40.0, 40.0, 0.0)
    assert len(tracks) == 1
    x, y, w, h = tracks[0].box
    assert abs((x + w / 2) - (PLAYER[0] + PLAYER[2] / 2)) < 3


def test_a_detection_left_without_a_check_is_checked_on_the_next_scan(monkeypatch):
    """The detector's tile finds a face once (its turn comes round once in many scans); on
    that scan frame the two men's region and its wider look take the whole check budget. The
    detection is carried to the next scan and checked there with its own ROI, and the man is
    followed (zidane.jpg turned 12 degrees: nothing was matted for 30 frames)."""
    monkeypatch.setattr(person_finder, "search_tiles", lambda height, width, levels: [])
    face = SimpleNamespace(score=0.9, box=(78.0, 22.0, 90.0, 34.0), roi=lambda: (84.0, 50.0, 40.0, 40.0, 0.0))
    calls = []

    def detector(image):
        calls.append(image.shape)
        return [face] if len(calls) == 1 else []

    landmarker = FakeLandmarker(PLAYER)
    models = SimpleNamespace(detector=detector, landmarker=landmarker)
    finder = PersonFinder(lambda: models, lambda: (lambda rgb: np.zeros((H, W), np.float32)))
    _find(finder, PAIR)
    assert person_finder.CHECKS_PER_FRAME == 2 and len(landmarker.rois) == 2 and not finder.tracks
    for _ in range(person_finder.SCAN_INTERVAL):
        tracks, _ = _find(finder, PAIR)
    assert len(calls) == 2  # the second scan's tile found nobody
    assert landmarker.rois[2:] == [(84.0, 50.0, 40.0, 40.0, 0.0)]
    assert len(tracks) == 1
    # carried once only: a detection that still finds no run is not carried on and on
    finder.reset()
    calls.clear()
    monkeypatch.setattr(person_finder, "CHECKS_PER_FRAME", 0)
    for _ in range(2 * person_finder.SCAN_INTERVAL + 1):
        _find(finder, (0, 0, 0, 0))  # the whole-frame pass sees nobody
    assert len(calls) == 3 and landmarker.rois[3:] == [] and finder._deferred == []


def test_a_landmark_box_is_stretched_only_to_a_frame_edge_it_nearly_reaches():
    """A person cut by the bottom edge: their landmarks stop short of it, their region reaches
    it, so their box does. The same region also runs on over the background to the left and
    right edges (a blurred bus beside a walker): the box is not stretched to an edge that it
    ends far from (more than :data:`EDGE_GAP` of its own size)."""
    from bridge.vision.person_finder import EDGE_GAP, _to_edges

    found = (30.0, 40.0, 40.0, 70.0)  # ends 10 px above the bottom, 30 px from the left, 90 from the right
    region = (0.0, 30.0, 160.0, 90.0)  # touches the left, right and bottom edges
    assert 30.0 / 40.0 > EDGE_GAP > 10.0 / 70.0
    assert _to_edges(found, region, W, H) == (30.0, 40.0, 40.0, float(H) - 40.0)
    near = (12.0, 40.0, 40.0, 70.0)  # 12 px from the left: within the gap
    assert _to_edges(near, region, W, H) == (0.0, 40.0, 52.0, float(H) - 40.0)
    assert _to_edges(found, (40.0, 30.0, 30.0, 60.0), W, H) == found  # a region inside the frame: as found


def test_a_part_of_a_tracked_person_seen_alone_does_not_become_their_box():
    """On a dark stage the whole-frame pass sees a guitarist one frame whole, the next only
    their hand (a region half inside their box). The hand is them (the track is seen, it
    stays), but it is not their box: the track keeps the player's box, and it is not marked
    as seen by the whole-frame pass, so the player keeps their own zoom window."""
    finder = _finder(FakeLandmarker(PLAYER))
    _find(finder, PLAYER)
    assert len(finder.tracks) == 1
    hand = (72, 50, 10, 10)
    for _ in range(person_finder.MAX_MISSES + 2):
        tracks, _ = _find(finder, hand)
    assert len(tracks) == 1, "the hand keeps the player tracked"
    x, y, w, h = tracks[0].box
    assert w >= PLAYER[2] - 2 and h >= PLAYER[3] - 2, "the box is still the player's, not the hand's"
    assert not tracks[0].seen_whole
    # the player seen whole again: that region is their box
    tracks, _ = _find(finder, PLAYER)
    assert tracks[0].seen_whole and tuple(round(v) for v in tracks[0].box) == PLAYER


#: A second player, right of PLAYER, and a frame's whole-frame pass that sees both.
SECOND = (112, 24, 26, 58)


class TwoPlayers(FakeLandmarker):
    """Sees PLAYER or SECOND around an ROI centred on them; ``delay`` seconds a call (a slow
    machine), and it records the thread that called it."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(PLAYER)
        self.delay, self.threads = delay, set()

    def __call__(self, image, roi):
        import threading
        import time

        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        self.person = SECOND if roi[0] > SECOND[0] else PLAYER
        return super().__call__(image, roi)


def _two(finder: PersonFinder, second: bool):
    frame = np.full((H, W, 3), 90, np.uint8)
    prob = np.maximum(_mask(PLAYER), _mask(SECOND)) if second else _mask(PLAYER)
    return finder.find(frame, frame, prob, np.full((H, W), 90, np.uint8), 0.001, [])


def _background_run(delay: float, pause: float) -> tuple[list[int], set[int]]:
    """Per frame, how many people the background finder follows: PLAYER from the first
    frame, SECOND stepping in on frame 4 (a scan frame); each check takes ``delay`` s, and
    ``pause`` s pass between frames (a fast machine: the scan is done long before it is due)."""
    import time

    landmarker = TwoPlayers(delay)
    models = SimpleNamespace(detector=lambda image: [], landmarker=landmarker)
    finder = PersonFinder(lambda: models, lambda: (lambda rgb: np.zeros((H, W), np.float32)), background=True)
    counts = []
    for frame in range(1, 11):
        counts.append(len(_two(finder, second=frame >= 4)[0]))
        time.sleep(pause)
    return counts, landmarker.threads


def test_a_background_scan_is_taken_in_a_fixed_number_of_frames_later_whatever_the_speed():
    """With ``background`` the landmark checks of a scan frame run on the finder's own thread,
    and their outcome is taken in SCAN_LAG frames later: a slow machine waits for it there,
    a fast one does not take it earlier, so the tracks never depend on the speed. Nobody
    followed yet: the first person is checked on the frame itself (a cold start)."""
    import threading

    lag = person_finder.SCAN_LAG
    assert 0 < lag < person_finder.SCAN_INTERVAL
    fast, _ = _background_run(0.0, 0.05)
    slow, slow_threads = _background_run(0.05, 0.0)
    assert fast == slow
    assert fast[:3] == [1, 1, 1], "the cold start's check runs on the frame: PLAYER at once"
    # SECOND is proposed on frame 4 (a scan frame) and followed from frame 4 + lag on
    assert fast[3:3 + lag] == [1] * lag and fast[3 + lag:] == [2] * (len(fast) - 3 - lag)
    assert any(t != threading.get_ident() for t in slow_threads), "the scan's check ran on the finder's thread"


def test_a_reset_drops_the_scan_still_running():
    """A cut (or a new stream) while a scan runs in the background: its outcome belongs to
    the old shot and never becomes a track of the new one, and the new stream's detector
    scan starts again at the whole frame (the reset waits for the old scan, which would
    otherwise move the scan on to its next tile after the reset)."""
    import time

    landmarker = TwoPlayers()
    seen_by_detector: list[tuple[int, ...]] = []
    models = SimpleNamespace(detector=lambda image: seen_by_detector.append(image.shape) or [], landmarker=landmarker)

    def slow_general(rgb):
        time.sleep(0.1)
        return np.zeros((H, W), np.float32)

    finder = PersonFinder(lambda: models, lambda: slow_general, background=True)
    for frame in range(1, 5):
        _two(finder, second=frame >= 4)  # frame 4: a scan with SECOND goes to the background
    finder.reset()
    time.sleep(0.2)  # the next stream starts a moment later
    seen_by_detector.clear()
    empty = np.zeros((H, W), np.float32)
    frame = np.full((H, W, 3), 90, np.uint8)
    for _ in range(person_finder.SCAN_INTERVAL):
        tracks, _ = finder.find(frame, frame, empty, np.full((H, W), 90, np.uint8), 0.001, [])
    assert tracks == []
    assert seen_by_detector[0] == (H, W, 3), "the first scan after the reset looks at the whole frame"


def _tile_general(person_in_tile: tuple[int, int, int, int]):
    """A general model that sees nothing on the whole frame and, on any smaller image (a
    detector tile), a person at ``person_in_tile`` (x, y, w, h) of that image."""
    def general(rgb):
        prob = np.zeros(rgb.shape[:2], np.float32)
        if rgb.shape[:2] != (H, W):
            x, y, w, h = person_in_tile
            prob[y:y + h, x:x + w] = 1.0
        return prob
    return general


def test_a_grey_frame_also_gets_the_general_model_on_the_detectors_tile(monkeypatch):
    """In grey the detector (which anchors on a face) and the whole-frame models see no
    full-length person; the general model sees them on the detector's tile, where they are
    twice the size. That source runs on grey frames only: on colour ones the detector finds
    people, and the same source matted the crowd behind a footballer."""
    tile = (40, 10, 80)  # x0, y0, side: the scan's first tile after the whole frame
    monkeypatch.setattr(person_finder, "search_tiles", lambda height, width, levels: [tile])
    # PLAYER in frame pixels, inside the tile
    in_tile = (PLAYER[0] - tile[0], PLAYER[1] - tile[1], PLAYER[2], PLAYER[3])
    for grey, expected in ((True, 1), (False, 0)):
        landmarker = FakeLandmarker(PLAYER)
        models = SimpleNamespace(detector=lambda image: [], landmarker=landmarker)
        finder = PersonFinder(lambda: models, lambda: _tile_general(in_tile))
        frame = np.full((H, W, 3), 90, np.uint8)
        if not grey:
            frame[..., 0] = 140  # a warm colour cast
        empty = np.zeros((H, W), np.float32)
        for _ in range(person_finder.SCAN_INTERVAL + 1):  # two scans: the whole frame, then the tile
            tracks, _ = finder.find(frame, frame, empty, np.full((H, W), 90, np.uint8), 0.001, [])
        assert len(tracks) == expected, f"grey={grey}"
        if grey:
            x, y, w, h = tracks[0].box
            assert abs((x + w / 2) - (PLAYER[0] + PLAYER[2] / 2)) < 3 and abs((y + h / 2) - (PLAYER[1] + PLAYER[3] / 2)) < 3


class MaskedLandmarker(FakeLandmarker):
    """A :class:`FakeLandmarker` that also returns the body mask the real model does: a
    (256, 256) float32 crop (1 over ``person``, 0 elsewhere) and its crop-to-image affine."""

    def __call__(self, image: np.ndarray, roi: tuple[float, ...]) -> SimpleNamespace:
        from bridge.vision.pose_landmarks import roi_to_affine

        result = super().__call__(image, roi)
        crop_to_image = roi_to_affine(tuple(roi))
        v, u = np.mgrid[0:256, 0:256].astype(np.float64) + 0.5
        xs = crop_to_image[0, 0] * u + crop_to_image[0, 1] * v + crop_to_image[0, 2]
        ys = crop_to_image[1, 0] * u + crop_to_image[1, 1] * v + crop_to_image[1, 2]
        x, y, w, h = self.person
        result.mask = ((xs >= x) & (xs < x + w) & (ys >= y) & (ys < y + h)).astype(np.float32)
        result.crop_to_image = crop_to_image
        return result


def _frame_with(finder: PersonFinder, region, matte) -> np.ndarray:
    """One frame as the stage runs it: find (the whole-frame pass sees ``region``, None:
    nobody), the composited ``matte`` ((H, W) float32; None: the whole-frame pass's), fill,
    follow. Returns the matte after :meth:`PersonFinder.fill`."""
    frame = np.full((H, W, 3), 90, np.uint8)
    whole = _mask(region) if region is not None else np.zeros((H, W), np.float32)
    finder.find(frame, frame, whole, np.full((H, W), 90, np.uint8), 0.001, [])
    prob = (whole if matte is None else matte).copy()
    finder.fill(prob)
    finder.follow(prob)
    return prob


def test_a_person_the_segmentation_misses_gets_the_body_mask_of_their_check():
    """A person confirmed by the landmark model whom the segmentation then misses (a man
    seen from behind, cut by the frame's edges, in grey: the selfie model in his window
    mattes only his hands) is filled in with the landmark model's body mask, kept fresh by
    a check on every scan while the matte misses them; a matte that covers them is left as
    it is, and neither the confirming check's mask (a walker just found is often half matted
    for a frame) nor an old mask (the person may have moved) is added."""
    x, y, w, h = PLAYER
    landmarker = MaskedLandmarker(PLAYER)
    finder = _finder(landmarker)
    _frame_with(finder, PLAYER, None)  # a scan frame: the whole-frame pass proposes, the check confirms
    assert len(finder.tracks) == 1 and finder.tracks[0].mask is not None
    # covered by the matte: left as it is, nothing to check again
    covered = _mask(PLAYER)
    assert np.array_equal(_frame_with(finder, PLAYER, covered), covered) and not finder.tracks[0].missed
    # missed: only the hands (a tenth of the person) in the matte
    hands = np.zeros((H, W), np.float32)
    hands[y + h // 2:y + h // 2 + 6, x:x + w] = 1.0
    checks = len(landmarker.rois)
    first = _frame_with(finder, None, hands)  # frame 3: missed, the confirming check's mask is not added
    assert np.array_equal(first, hands) and finder.tracks[0].missed
    for frame in range(3 * person_finder.SCAN_INTERVAL):  # frame 4 is a scan: checked again, renewed mask
        filled = _frame_with(finder, None, hands)
        inside = filled[y + 2:y + h - 2, x + 2:x + w - 2]
        assert (inside > 0.5).mean() > 0.95, f"frame {4 + frame}: the renewed body mask fills the person in"
        assert filled[:, :x - 3].max() == 0.0 and filled[:, x + w + 3:].max() == 0.0, "and nothing beside them"
        assert finder.tracks and finder.tracks[0].missed
    assert len(landmarker.rois) - checks >= 3, "the missed track was checked again on every scan"
    # the landmark model stops seeing them (checks fail): the mask grows old and is no longer added
    landmarker.person = (0, 0, 1, 1)
    for _ in range(person_finder.MASK_FRESH + person_finder.SCAN_INTERVAL):
        filled = _frame_with(finder, PLAYER, hands + _mask((x, y, 4, 4)))
    assert filled[y + h // 4, x + w // 2] < 0.5, "an old mask is not added"


def test_a_renewed_mask_taken_in_after_the_person_moved_is_moved_with_them():
    """With the scan on the finder's thread, a renewed body mask is taken in SCAN_LAG frames
    after the frame it was made on; the person has moved since (the tracks follow the image
    motion), so the mask is moved by that motion too, or it would be pasted where they were."""
    from bridge.vision.person_finder import Track
    from bridge.vision.pose_landmarks import roi_to_affine

    finder = _finder(MaskedLandmarker(PLAYER))
    track = Track(PLAYER, 1, moved=(2.0, -1.0))
    finder.tracks = [track]
    matrix = roi_to_affine((84.0, 50.0, 90.0, 90.0, 0.0))
    mask = np.ones((256, 256), np.float32)
    # made when the track had moved (2, -1) so far; taken in after it has moved (7, 3)
    track.moved = (7.0, 3.0)
    finder._apply([("look", 1, (mask, matrix, 4), (2.0, -1.0))])
    assert track.renewed and track.mask is mask and track.mask_frame == 4
    assert np.allclose(track.mask_to_work[:, :2], matrix[:, :2])
    assert np.allclose(track.mask_to_work[:, 2], matrix[:, 2] + [5.0, 4.0])
    assert np.allclose(matrix, roi_to_affine((84.0, 50.0, 90.0, 90.0, 0.0))), "the look's own matrix is not changed"


def test_a_change_of_frame_size_starts_afresh():
    """When the source's resolution changes mid-stream, the tracks' boxes and body masks are
    in the old size's pixels: the frame counts as a new shot and the people are found anew,
    rather than an old box (and its mask) being pasted at the wrong place."""
    models = SimpleNamespace(detector=lambda image: [], landmarker=MaskedLandmarker(PLAYER))
    finder = PersonFinder(lambda: models, lambda: (lambda rgb: np.zeros(rgb.shape[:2], np.float32)))
    _frame_with(finder, PLAYER, None)
    assert len(finder.tracks) == 1
    same = np.full((H, W), 90, np.uint8)
    assert not finder.new_shot(same)
    bigger = np.full((2 * H, 2 * W), 90, np.uint8)
    assert finder.new_shot(bigger)
    frame = np.full((2 * H, 2 * W, 3), 90, np.uint8)
    tracks, _ = finder.find(frame, frame, np.zeros((2 * H, 2 * W), np.float32), bigger, 0.001, [])
    assert tracks == []
