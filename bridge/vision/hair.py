"""Hair window: the hair above a big person's head, which the whole-frame pass cuts.

The selfie models give a stylised character's hair-do standing up above the head (CG, the
avatar's own generated output) a probability under 0.1 on the whole frame (Megamind 160-199:
1113 of the 1659 person pixels a frame that the stage missed at the working size), so no
threshold brings it back; a big person's zoom window (one whom the whole-frame pass misses)
cuts it as well (Megamind 12-59). A square window over the top of their matte, on the
general (square) model, sees the head large and the hair with it. Its mask is added
(per-pixel max) only where hair can be: above the matte's top in each column, and only in
the head's columns (those whose matte begins in the top quarter of the person's matte,
widened by :data:`HAIR_WIDEN` of the window's side). Without the column limit it adds
camera.png's held camera (0.960 -> 0.955).

Measured (IoU against the reference mattes, ``docs/benchmarks.md``, session 9 round):
cg-woman 0.787 -> 0.823, singer 0.753 -> 0.756, every other development case and the 49
reframings unchanged, when given to people without a zoom window only; given to people with
one too (session 10), cg-hair 0.833 -> 0.853 (hair added on 45 of its 48 scored frames), every
other case unchanged but for cg's path noise (the window adds nothing on its scored frames;
its score moves 0.746-0.785 with the warm-up's length alone), the 49 reframings' mean
0.8397 -> 0.8401.

A head whose window finds no hair on :data:`HAIR_MISSES` scans in a row waits
:data:`HAIR_RETRY` scans for its next look (a real head: zidane.jpg at 640x360, the window's
mean cost a frame 1.96 -> 0.66 ms, every case the same but band-duo 0.659 -> 0.656).

Cost: one square-model run (256x256) per such person (at most :data:`HAIR_WINDOWS`) on the
person finder's scan frames only; on the two frames between, the window's mask is carried,
moved by the image motion inside the window (:func:`~bridge.vision.object_cut.image_shift`),
and applied the same way. A window that would add less than :data:`HAIR_MIN_GAIN` of its
area adds nothing and is not carried. On a close-up at 640x480 (2-core CPU): about 6.2 ms on
a scan frame, 0.01 ms on the others (median: nothing is carried there), so the stage's
median frame pays nothing measurable and its mean about 2.1 ms.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from bridge.vision.object_cut import Box, image_shift

#: A person whose box is at least this share of the frame's height gets a hair window (smaller
#: people fill a zoom window of their own; other heights were not measured).
HAIR_MIN_HEIGHT = 0.3
#: Most people given a hair window a frame (the tallest first): one square-model run each on
#: a scan frame. Two is the number of big people the development clips hold at most but
#: for one shot of three players (band, 1.5 windows a scan frame on average).
HAIR_WINDOWS = 2
#: A head whose window found no hair (under :data:`HAIR_MIN_GAIN`) on :data:`HAIR_MISSES`
#: scans in a row is looked at again only after :data:`HAIR_RETRY` scans: a real head's hair
#: is in the matte already, and the two men of zidane.jpg at 640x360 (each with a zoom
#: window, 30 % of the frame tall) cost a square-model run on every scan frame for nothing.
#: A CG hair-do is missed on a scan now and then: waiting after the first miss cost cg-hair
#: 0.853 -> 0.839 and cg-woman 0.823 -> 0.811.
HAIR_MISSES = 3
HAIR_RETRY = 4
#: The window's side, as a fraction of the height of the person's matte inside their box.
HAIR_SIDE = 0.54
#: The head's columns: those whose matte begins within this share of the person's matte
#: height from its top.
HAIR_HEAD_BAND = 0.25
#: The head's columns are widened on each side by this share of the window's side (hair
#: spreads sideways past the head).
HAIR_WIDEN = 0.05
#: The level above which a pixel of the matte counts as person.
LEVEL = 0.5
#: A window that would add less than this share of its area as person adds nothing and is
#: not carried to the next frames: measured on a close-up at 640x480, real heads (carphone,
#: camera.png, zidane.jpg) would add 0.1-0.3 % of it (median; edge pixels: their hair is in
#: the whole-frame matte; added on scan frames only they would flicker), the CG hair of
#: cg-woman 16 %.
HAIR_MIN_GAIN = 0.02


class HairWindow:
    """Hair windows over the big people's heads (module docstring).

    Not thread-safe; keeps each person's last window mask between scan frames.
    """

    def __init__(self) -> None:
        # track id -> (crop-to-work affine (2, 3) float64, window mask (n, n) float32), all
        # made on the last scan frame, whose luma and number are kept once for all of them
        self._kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # track id -> (scans in a row, at most HAIR_MISSES, whose window found no hair; the last of them)
        self._bare: dict[int, tuple[int, int]] = {}
        self._luma: np.ndarray | None = None
        self._frame = 0
        self.runs = 0  # segmentation model runs (for tests and benchmarks)

    def reset(self) -> None:
        """Forget the kept windows (a new stream or shot)."""
        self._kept.clear()
        self._bare.clear()

    def __call__(self, prob: np.ndarray, small: np.ndarray, luma: np.ndarray, tracks: list[Any],
                 segmenter: Any, frame: int, scan: bool, every: int) -> np.ndarray:
        """Add the hair above each big person's head to ``prob`` in place and return it.

        Args:
            prob: (h, w) float32 person probability in [0, 1] (whole frame and zoom windows).
            small: (h, w, 3) uint8 RGB, the frame ``prob`` belongs to.
            luma: ``small``'s (h, w) uint8 luma.
            tracks: the person finder's tracks (``track_id``, ``box`` (x, y, w, h) px);
                those whose box is at least :data:`HAIR_MIN_HEIGHT` of the frame's height get
                a window, the :data:`HAIR_WINDOWS` tallest of them.
            segmenter: the square segmentation model (anything with ``raw(rgb, matrix)``
                returning a new (n, n) float32 array and ``input_width``, as
                :class:`~bridge.vision.selfie.SelfieSegmenter`).
            frame: the finder's frame number (from 1 after a reset).
            scan: this is a scan frame: the windows are segmented anew; otherwise a
                window kept from at most ``every - 1`` frames ago is moved with the image
                and used again.
            every: frames between scan frames.
        """
        h, w = prob.shape
        if scan:
            if self._luma is None or self._luma.shape != luma.shape:
                self._luma = np.empty_like(luma)
            np.copyto(self._luma, luma)
            self._frame = frame
            kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        elif self._luma is None or self._luma.shape != luma.shape or not 0 <= frame - self._frame < every:
            self._kept.clear()
            return prob
        else:
            kept = self._kept
        big = [t for t in tracks if t.box[3] >= HAIR_MIN_HEIGHT * h and (scan or t.track_id in kept)]
        if scan:
            # a head whose window found no hair waits HAIR_RETRY scans before the next look
            # (hair does not grow between frames; a real head's hair is in the matte already)
            self._bare = {t.track_id: self._bare[t.track_id] for t in big if t.track_id in self._bare}
            big = [t for t in big if self._bare.get(t.track_id, (0, 0))[0] < HAIR_MISSES
                   or frame - self._bare[t.track_id][1] >= HAIR_RETRY * every]
        big.sort(key=lambda t: -t.box[3])
        for track in big[:HAIR_WINDOWS]:
            head = _head(prob, track.box)
            if head is None:
                continue
            cx, top, height = head
            side = HAIR_SIDE * height
            if side < 8:
                continue
            if scan:
                size = segmenter.input_width
                # the window: centred on the head's columns, a sixth of it above the matte's top
                to_work = np.array([[side / size, 0.0, cx - side / 2], [0.0, side / size, top - side / 6]])
                mask = segmenter.raw(small, cv2.invertAffineTransform(to_work))
                self.runs += 1
            else:
                to_work, mask = kept[track.track_id]
                dx, dy = image_shift(self._luma, luma, (to_work[0, 2], to_work[1, 2], side, side))
                to_work = to_work + np.array([[0.0, 0.0, dx], [0.0, 0.0, dy]])
            found = _hair(prob, mask, to_work, top, height)
            if found is None or found[2] < HAIR_MIN_GAIN * side * side:
                # no hair above this head (a real close-up's hair is in the whole-frame matte
                # already): the window adds nothing, here or on the next frames (a few edge
                # pixels on scan frames only would flicker)
                kept.pop(track.track_id, None)
                if scan:
                    misses = self._bare.get(track.track_id, (0, 0))[0]
                    self._bare[track.track_id] = (min(misses + 1, HAIR_MISSES), frame)
                continue
            here, window, _ = found
            np.maximum(here, window, out=here)
            if scan:
                kept[track.track_id] = (to_work, mask)
                self._bare.pop(track.track_id, None)
        self._kept = kept
        return prob


def _head(prob: np.ndarray, box: Box) -> tuple[float, float, float] | None:
    """``(column centre, top row, height)`` in pixels of the person's matte (``prob`` > :data:`LEVEL`)
    inside ``box``: the head's centre is the mean column of the matte's top
    :data:`HAIR_HEAD_BAND`; None when the box holds no matte."""
    h, w = prob.shape
    x, y, bw, bh = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(math.ceil(x + bw))), min(h, int(math.ceil(y + bh)))
    if x1 <= x0 or y1 <= y0:
        return None
    person = prob[y0:y1, x0:x1] > LEVEL
    rows = np.flatnonzero(person.any(axis=1))
    if rows.size == 0:
        return None
    top, bottom = int(rows[0]), int(rows[-1])
    band = person[top:top + max(1, int(HAIR_HEAD_BAND * (bottom - top + 1)))].sum(axis=0)
    cx = float(np.dot(np.arange(band.size), band) / max(1, band.sum()))
    return x0 + cx, float(y0 + top), float(bottom - top + 1)


def _hair(prob: np.ndarray, mask: np.ndarray, to_work: np.ndarray, top: float,
          height: float) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Where ``mask`` (the window's (n, n) output, placed by ``to_work``) may add to ``prob``:
    above the matte's top in each column, in the head's columns (their matte begins above
    ``top + HAIR_HEAD_BAND * height``), widened by :data:`HAIR_WIDEN` of the side.

    Returns:
        ``(here, window, gain)``: the window's part of ``prob`` (a view), the window's mask
        on it (float32, 0 where no hair can be) and how many pixels taking the max would make
        person (> :data:`LEVEL`); None when the window misses the frame or the head.
    """
    h, w = prob.shape
    n = mask.shape[0]
    side = to_work[0, 0] * n
    x0, y0 = max(0, int(to_work[0, 2])), max(0, int(to_work[1, 2]))
    x1, y1 = min(w, int(math.ceil(to_work[0, 2] + side))), min(h, int(math.ceil(to_work[1, 2] + side)))
    if x1 <= x0 or y1 <= y0:
        return None
    # each column's first person row above the window's bottom (y1 where it has none there:
    # the whole column of the window is above its top then)
    columns = prob[:y1, x0:x1] > LEVEL
    first = np.where(columns.any(axis=0), columns.argmax(axis=0), y1)
    head = first < top + HAIR_HEAD_BAND * height
    reach = int(HAIR_WIDEN * side)
    if reach > 0 and head.any():
        head = cv2.dilate(head.astype(np.uint8)[None, :], np.ones((1, 2 * reach + 1), np.uint8))[0] > 0
    if not head.any():
        return None
    shifted = to_work.copy()
    shifted[0, 2] -= x0
    shifted[1, 2] -= y0
    window = cv2.warpAffine(mask, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    hair = (np.arange(y0, y1)[:, None] < first[None, :]) & head[None, :]
    window *= hair  # 0 where no hair can be
    here = prob[y0:y1, x0:x1]
    return here, window, int(np.count_nonzero((window > LEVEL) & (here <= LEVEL)))
