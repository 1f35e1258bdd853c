"""The hair window (bridge/vision/hair.py): the hair above a big person's head, which the
whole-frame pass cuts, from a square window over the head on the square model, added only
where hair can be, on scan frames, and carried with the image between them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bridge.vision import hair
from bridge.vision.hair import HairWindow

H, W = 240, 320


class FakeSquareModel:
    """A segmenter with the :class:`~bridge.vision.selfie.SelfieSegmenter` interface the
    hair window uses (``raw(rgb, matrix)`` on a 256x256 input) that calls every input pixel
    a person (``stripe``: only its input columns 96-159), and counts its runs and the
    matrices it was given."""

    input_width = input_height = 256

    def __init__(self, stripe: bool = False) -> None:
        self.matrices: list[np.ndarray] = []
        self.stripe = stripe

    def raw(self, rgb: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3
        self.matrices.append(np.array(matrix))
        out = np.ones((256, 256), np.float32)
        if self.stripe:
            out[:, :96] = 0.0
            out[:, 160:] = 0.0
        return out


def _person(dx: int = 0) -> np.ndarray:
    """A matte: a head (rows 60-130, columns 140-180) with a hole at (80, 150), on a body
    from row 130 (columns 100-220), moved ``dx`` columns."""
    prob = np.zeros((H, W), np.float32)
    prob[60:130, 140 + dx:181 + dx] = 1.0
    prob[130:, 100 + dx:221 + dx] = 1.0
    prob[78:83, 148 + dx:153 + dx] = 0.0
    return prob


def _track(dx: int = 0, seen_whole: bool = True, height: float = 185.0) -> SimpleNamespace:
    return SimpleNamespace(track_id=1, box=(95.0 + dx, 55.0, 130.0, height), seen_whole=seen_whole)


def _frame(dx: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB frame and its luma, the texture moved ``dx`` columns."""
    luma = np.random.default_rng(1).integers(0, 255, (H, W), np.uint8)
    luma = np.roll(luma, dx, axis=1)
    return np.repeat(luma[..., None], 3, axis=2), luma


def test_hair_is_added_above_the_head_and_nowhere_else():
    prob = _person()
    before = prob.copy()
    small, luma = _frame()
    model = FakeSquareModel()
    HairWindow()(prob, small, luma, [_track()], model, frame=1, scan=True, every=3)
    assert len(model.matrices) == 1
    # the window sees the head large: 0.54 of the matte's height (180 px), a sixth above its top
    side = 256 / model.matrices[0][0, 0]
    assert abs(side - hair.HAIR_SIDE * 180) < 1.0
    # above the head, in the head's columns: the window's hair
    assert (prob[52:60, 145:176] == 1.0).all()
    # above the shoulders (their matte begins below the head's top quarter): nothing
    assert (prob[40:130, 110:132] == 0.0).all() and (prob[40:130, 190:215] == 0.0).all()
    # below the matte's top (the hole in the head) and outside the window: as it was
    assert prob[80, 150] == 0.0
    assert (prob[:20] == 0.0).all()
    changed = prob != before
    assert changed.any() and (prob[changed] == 1.0).all()


def test_only_big_people_get_a_window_whether_or_not_the_whole_frame_pass_sees_them():
    small, luma = _frame()
    # a person under HAIR_MIN_HEIGHT of the frame: no window
    prob = _person()
    model = FakeSquareModel()
    HairWindow()(prob, small, luma, [_track(height=0.25 * H)], model, frame=1, scan=True, every=3)
    assert not model.matrices and np.array_equal(prob, _person())
    # a big person with a zoom window of their own (the whole-frame pass misses them): the
    # zoom window's model cuts a CG hair-do too (cg-hair), so they get one as well
    prob = _person()
    HairWindow()(prob, small, luma, [_track(seen_whole=False)], model, frame=1, scan=True, every=3)
    assert len(model.matrices) == 1 and (prob[52:60, 145:176] == 1.0).all()


def test_at_most_two_windows_a_frame_for_the_tallest_people():
    small, luma = _frame()
    model = FakeSquareModel()
    tracks = [SimpleNamespace(track_id=i, box=(95.0, 55.0, 130.0, height), seen_whole=True)
              for i, height in enumerate((150.0, 185.0, 120.0))]
    HairWindow()(_person(), small, luma, tracks, model, frame=1, scan=True, every=3)
    assert len(model.matrices) == hair.HAIR_WINDOWS == 2
    # the two tallest: each window's side follows the matte's height, the same for all three
    # boxes here, so tell them apart by the order the boxes came in instead
    window = HairWindow()
    model = FakeSquareModel()
    short = SimpleNamespace(track_id=7, box=(95.0, 55.0, 130.0, 80.0), seen_whole=True)
    window(_person(), small, luma, [short] + tracks[:2], model, frame=1, scan=True, every=3)
    assert len(model.matrices) == 2 and 7 not in window._kept


def test_a_window_is_run_on_scan_frames_and_moved_with_the_image_between():
    window = HairWindow()
    model = FakeSquareModel(stripe=True)  # what is added shows where the window lies
    small, luma = _frame()
    prob = _person()
    window(prob, small, luma, [_track()], model, frame=1, scan=True, every=3)
    added = np.argwhere(prob[50:60] != _person()[50:60])
    assert 0 < len(added) and np.ptp(added[:, 1]) < 30  # the stripe's 24 columns, not the head's 49
    # the next frame: the person and the picture moved 6 px right; no model run, the kept
    # window's hair moves with them
    small, luma = _frame(6)
    prob = _person(6)
    window(prob, small, luma, [_track(6)], model, frame=2, scan=False, every=3)
    assert len(model.matrices) == 1 and window.runs == 1
    moved = np.argwhere(prob[50:60] != _person(6)[50:60])
    assert len(moved) > 0
    assert abs(moved[:, 1].min() - added[:, 1].min() - 6) <= 1 and abs(moved[:, 1].max() - added[:, 1].max() - 6) <= 1
    # a window kept for longer than the scan interval is not used again
    prob = _person(6)
    window(prob, small, luma, [_track(6)], model, frame=4, scan=False, every=3)
    assert np.array_equal(prob, _person(6)) and window.runs == 1
    # nor after a reset (a new shot)
    window(_person(), *_frame(), [_track()], model, frame=7, scan=True, every=3)
    window.reset()
    prob = _person()
    window(prob, *_frame(), [_track()], model, frame=8, scan=False, every=3)
    assert np.array_equal(prob, _person()) and window.runs == 2


def test_a_window_that_finds_no_hair_adds_nothing_and_is_not_carried():
    # a real close-up: the window would add a few edge pixels (its hair is in the whole-frame
    # matte); added on scan frames only they would flicker, so they are not added at all,
    # and the frames between scans do not pay for moving the window
    class EdgeOnly(FakeSquareModel):
        def raw(self, rgb, matrix=None):
            out = super().raw(rgb, matrix)
            out[:] = 0.0
            out[40:44, 120:136] = 1.0  # a few pixels above the head, under 2 % of the window
            return out

    window, model = HairWindow(), EdgeOnly()
    runs = []
    for frame, scan in ((1, True), (2, False), (4, True), (7, True), (10, True), (13, True), (16, True), (19, True)):
        prob = _person()
        window(prob, *_frame(), [_track()], model, frame=frame, scan=scan, every=3)
        assert np.array_equal(prob, _person()), frame
        runs.append(window.runs)
    # a head without hair on HAIR_MISSES scans in a row is looked at again HAIR_RETRY scans
    # (12 frames) after the last of them
    assert (hair.HAIR_MISSES, hair.HAIR_RETRY) == (3, 4) and runs == [1, 1, 2, 3, 3, 3, 3, 4]
    # a new person (another track) is looked at on the first scan; a reset forgets the wait
    window(_person(), *_frame(), [_track(), SimpleNamespace(track_id=2, box=_track().box)], model, frame=22, scan=True, every=3)
    assert window.runs == 5  # the second track only: the first waits until frame 31
    window.reset()
    window(_person(), *_frame(), [_track()], model, frame=1, scan=True, every=3)
    assert window.runs == 6


def test_a_head_whose_hair_comes_and_goes_is_looked_at_on_every_scan():
    # a CG hair-do is missed on a scan now and then; hair found clears the count of misses
    class Sometimes(FakeSquareModel):
        def raw(self, rgb, matrix=None):
            out = super().raw(rgb, matrix)
            if len(self.matrices) % 3 == 0:  # every third look finds no hair
                out[:] = 0.0
            return out

    window, model = HairWindow(), Sometimes()
    for frame in range(1, 40, 3):
        window(_person(), *_frame(), [_track()], model, frame=frame, scan=True, every=3)
    assert window.runs == 13


    # a window that finds hair above the whole head is added
    prob = _person()
    HairWindow()(prob, *_frame(), [_track()], FakeSquareModel(), frame=1, scan=True, every=3)
    assert (prob[45:60, 145:176] == 1.0).all()
